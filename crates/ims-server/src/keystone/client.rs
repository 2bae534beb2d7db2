//! The HTTP side of Keystone: IMS's own service token (password authentication, scoped to the service
//! project) and token validation (`GET /v3/auth/tokens` with `X-Subject-Token`, as keystonemiddleware does).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::json;

use super::token::{TokenBody, TokenInfo};
use super::KeystoneError;
use crate::config::KeystoneConfig;

/// Longest token accepted for validation (Keystone's fernet tokens are about 200 bytes).
const MAX_TOKEN_LEN: usize = 8 << 10;
/// A service token is renewed this long before it expires (or at half its life, if that is shorter).
const RENEW_MARGIN: Duration = Duration::from_secs(60);

pub struct KeystoneClient {
    http: reqwest::Client,
    config: KeystoneConfig,
    tokens_url: String,
    service_token: tokio::sync::Mutex<Option<ServiceToken>>,
}

#[derive(Clone)]
struct ServiceToken {
    secret: String,
    renew_at: DateTime<Utc>,
}

impl KeystoneClient {
    /// A client of the Keystone at `config.url`; nothing is sent until the first validation.
    pub fn new(config: KeystoneConfig) -> anyhow::Result<KeystoneClient> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout.max(1)))
            .connect_timeout(Duration::from_secs(config.timeout.clamp(1, 5)))
            .build()?;
        let tokens_url = format!("{}/auth/tokens", config.url.trim_end_matches('/'));
        Ok(KeystoneClient { http, config, tokens_url, service_token: tokio::sync::Mutex::new(None) })
    }

    /// What Keystone says of `subject`: its details when valid, [`KeystoneError::InvalidToken`] when Keystone
    /// does not know it (malformed, expired or revoked), [`KeystoneError::Unavailable`] when Keystone could
    /// not answer or refused IMS's own credentials. A service token Keystone no longer accepts is replaced
    /// once and the validation retried.
    pub async fn validate(&self, subject: &str) -> Result<TokenInfo, KeystoneError> {
        if subject.len() > MAX_TOKEN_LEN || reqwest::header::HeaderValue::from_str(subject).is_err() {
            return Err(KeystoneError::InvalidToken);
        }
        for attempt in 0..2 {
            let service = self.service_token().await?;
            let response = self
                .http
                .get(&self.tokens_url)
                .header("x-auth-token", &service)
                .header("x-subject-token", subject)
                .send()
                .await
                .map_err(|e| self.unreachable(e))?;
            match response.status() {
                StatusCode::OK => {
                    let body: TokenBody = response.json().await.map_err(|e| {
                        KeystoneError::Unavailable(format!("Keystone sent a token validation IMS cannot read: {e}"))
                    })?;
                    return Ok(body.token);
                }
                StatusCode::NOT_FOUND => return Err(KeystoneError::InvalidToken),
                StatusCode::UNAUTHORIZED if attempt == 0 => self.forget_service_token(&service).await,
                StatusCode::UNAUTHORIZED => {
                    return Err(KeystoneError::Unavailable("Keystone refuses the token it just issued to IMS".into()))
                }
                StatusCode::FORBIDDEN => {
                    return Err(KeystoneError::Unavailable(format!(
                        "Keystone does not let user {} validate tokens: give it the service role in project {}",
                        self.config.username, self.config.project
                    )))
                }
                status => return Err(KeystoneError::Unavailable(format!("Keystone answered a token validation with {status}"))),
            }
        }
        unreachable!("the second attempt always returns")
    }

    /// IMS's service token, issued again when none is held or it is close to expiry.
    async fn service_token(&self) -> Result<String, KeystoneError> {
        let mut held = self.service_token.lock().await;
        if let Some(token) = held.as_ref().filter(|t| t.renew_at > Utc::now()) {
            return Ok(token.secret.clone());
        }
        let token = self.issue_service_token().await?;
        *held = Some(token.clone());
        Ok(token.secret)
    }

    /// Drops the held service token if it is still `secret` (another request may have replaced it already).
    async fn forget_service_token(&self, secret: &str) {
        let mut held = self.service_token.lock().await;
        if held.as_ref().is_some_and(|t| t.secret == secret) {
            *held = None;
        }
    }

    async fn issue_service_token(&self) -> Result<ServiceToken, KeystoneError> {
        let c = &self.config;
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": c.username, "domain": {"name": c.user_domain_name}, "password": c.password}}},
            "scope": {"project": {"name": c.project, "domain": {"name": c.project_domain_name}}},
        }});
        let response = self.http.post(&self.tokens_url).json(&body).send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if status != StatusCode::CREATED {
            let why = if status == StatusCode::UNAUTHORIZED { "wrong user, password or project".to_string() } else { status.to_string() };
            tracing::error!(user = %c.username, project = %c.project, %status, "Keystone refused IMS's service credentials");
            return Err(KeystoneError::Unavailable(format!("Keystone refused IMS's service credentials: {why}")));
        }
        let secret = response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| KeystoneError::Unavailable("Keystone issued a token without X-Subject-Token".into()))?;
        let body: TokenBody = response
            .json()
            .await
            .map_err(|e| KeystoneError::Unavailable(format!("Keystone issued a token IMS cannot read: {e}")))?;
        let now = Utc::now();
        let life = (body.token.expires_at - now).to_std().unwrap_or_default();
        let margin = RENEW_MARGIN.min(life / 2);
        let renew_at = body.token.expires_at - chrono::Duration::from_std(margin).unwrap_or_default();
        tracing::info!(user = %c.username, expires_at = %body.token.expires_at, "obtained a Keystone service token");
        Ok(ServiceToken { secret, renew_at })
    }

    fn unreachable(&self, e: reqwest::Error) -> KeystoneError {
        tracing::warn!(url = %self.config.url, error = %e, "Keystone is unreachable");
        KeystoneError::Unavailable(format!("Keystone at {} is unreachable", self.config.url))
    }
}
