//! The harness of the console's browser tests: the real server in-process on a free port, and
//! Debian's headless Chromium driven through chromedriver (WebDriver) with `thirtyfour`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ims_client::{Client, CreateImage, Role};
use ims_server::Settings;
use serde_json::{json, Value};
use tempfile::TempDir;
use thirtyfour::extensions::cdp::ChromeDevTools;
use thirtyfour::prelude::*;
use tokio::sync::oneshot;

pub const ADMIN_TOKEN: &str = "console-test-admin-token";
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const DESKTOP: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (390, 844);
pub const WAIT: Duration = Duration::from_secs(15);

/// One browser at a time: the machines have two cores.
pub static BROWSER_SLOT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// --- the server ------------------------------------------------------------------------------

/// The real server on 127.0.0.1:0 with a temporary data directory (as `tests/api/common.rs`).
pub struct TestServer {
    pub url: String,
    pub admin: Client,
    pub database_url: String,
    pub _dir: TempDir,
    pub _shutdown: oneshot::Sender<()>,
}

pub struct Tenant {
    pub project_id: String,
    pub token: String,
    pub token_id: String,
    pub client: Client,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// A server whose settings `adjust` changes first (e.g. no job workers, so jobs wait).
    pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings { data_dir: dir.path().join("data"), admin_token: Some(ADMIN_TOKEN.to_string()), ..Settings::default() };
        adjust(&mut settings);
        let database_url = settings.database_url();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let node = ims_server::Node::open(settings).await.unwrap();
        tokio::spawn(async move {
            node.serve(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let admin = Client::new(&url, ADMIN_TOKEN).unwrap();
        TestServer { url, admin, database_url, _dir: dir, _shutdown: tx }
    }

    /// Gives `user_id` a role in one more project, straight in the catalog: the identity API gives a
    /// user its first role only.
    pub async fn assign_role(&self, user_id: &str, project_id: &str, role: ims_catalog::Role) {
        let catalog = ims_catalog::Catalog::connect(&self.database_url).await.unwrap();
        let event = ims_catalog::AuditEvent::new("req-console-test", "role.assign", format!("user:{user_id}"));
        catalog.identity.assign_role(user_id, project_id, role, &event).await.unwrap();
    }

    pub async fn tenant(&self, name: &str, role: Role) -> Tenant {
        let project = self.admin.create_project(name).await.unwrap();
        let created = self.admin.create_user(&format!("{name}-user"), &project.id, role).await.unwrap();
        let token = created.token.token.clone().unwrap();
        Tenant { project_id: project.id, client: self.admin.with_token(token.clone()), token, token_id: created.token.id }
    }
}

pub fn raw_image(name: &str) -> CreateImage {
    CreateImage { name: Some(name.into()), disk_format: Some("raw".into()), container_format: Some("bare".into()), ..Default::default() }
}

pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// --- the browser -----------------------------------------------------------------------------

/// The chromedriver this test started. When it goes, it is asked to shut down (which closes the
/// browsers it started); only if it does not is it ended, by its process id.
pub struct ChromeDriverProcess {
    child: Child,
    port: u16,
}

impl Drop for ChromeDriverProcess {
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(b"GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let _ = s.read_to_end(&mut Vec::new());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A console session in a fresh headless Chromium, with the server it talks to.
pub struct Console {
    pub driver: WebDriver,
    pub server: TestServer,
    pub base: String,
    pub _chromedriver: ChromeDriverProcess,
    pub _profile: TempDir,
    pub _slot: tokio::sync::MutexGuard<'static, ()>,
}

pub fn require_browser() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER].into_iter().filter(|p| !Path::new(p).exists()).collect();
    assert!(
        missing.is_empty(),
        "the console browser tests need Debian's chromium and chromium-driver, but {} is missing: \
         run scripts/install-browser (or apt-get install -y chromium chromium-driver) first",
        missing.join(" and ")
    );
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub async fn start_chromedriver(log: &Path) -> ChromeDriverProcess {
    for _ in 0..3 {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let process = ChromeDriverProcess { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/status")).await {
                if r.status().is_success() {
                    return process;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(process);
    }
    panic!("chromedriver did not start listening (log: {})", log.display());
}

impl Console {
    /// Starts a server and a browser (desktop size), and opens the console's sign-in page.
    pub async fn start() -> Console {
        Console::start_with(|_| {}).await
    }

    /// As [`Console::start`], with a server whose settings `adjust` changes.
    pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> Console {
        let slot = BROWSER_SLOT.lock().await;
        require_browser();
        let server = TestServer::start_with(adjust).await;
        let profile = tempfile::tempdir().unwrap();
        let chromedriver = start_chromedriver(&profile.path().join("chromedriver.log")).await;
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(CHROMIUM).unwrap();
        for arg in [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
            "--lang=en-US",
            "--hide-scrollbars",
            // Nothing leaves the machine: names do not resolve, and anything not on the loopback
            // goes to a closed local port (loopback addresses bypass the proxy).
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
            "--proxy-server=http://127.0.0.1:9",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-breakpad",
            "--disable-crash-reporter",
            "--no-default-browser-check",
            "--no-pings",
            "--disable-features=OptimizationHints,MediaRouter,Translate,NetworkTimeServiceQuerying,DnsOverHttps,AutofillServerCommunication",
        ] {
            caps.add_arg(arg).unwrap();
        }
        caps.add_arg(&format!("--window-size={},{}", DESKTOP.0, DESKTOP.1)).unwrap();
        caps.add_arg(&format!("--user-data-dir={}", profile.path().join("profile").display())).unwrap();
        let driver = WebDriver::new(format!("http://127.0.0.1:{}", chromedriver.port), caps)
            .await
            .unwrap_or_else(|e| panic!("cannot start {CHROMIUM} through chromedriver: {e}"));
        let base = format!("{}/console/", server.url);
        let console = Console { driver, server, base, _chromedriver: chromedriver, _profile: profile, _slot: slot };
        console.set_viewport(DESKTOP).await;
        console.driver.goto(format!("{}#/signin", console.base)).await.unwrap();
        console.wait_for("#token").await;
        console
    }

    /// Ends the browser session (also done on drop, less tidily).
    pub async fn quit(self) {
        let Console { driver, .. } = self;
        let _ = driver.quit().await;
    }

    pub async fn cdp(&self, method: &str, params: Value) {
        ChromeDevTools::new(self.driver.handle.clone()).execute_cdp_with_params(method, params).await.unwrap();
    }

    /// Sets the CSS viewport exactly (what a phone of that width shows).
    pub async fn set_viewport(&self, (width, height): (u32, u32)) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}),
        )
        .await;
    }

    pub async fn js(&self, script: &str) -> Value {
        self.driver.execute(script, Vec::<Value>::new()).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}")).json().clone()
    }

    /// Waits until `expr` (a JavaScript expression) is truthy; returns its value.
    pub async fn until(&self, expr: &str, what: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        let script = format!("try {{ return ({expr}); }} catch (e) {{ return null; }}");
        loop {
            let v = self.js(&script).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let shot = self.screenshot(&format!("failure-{}", slug(what))).await;
                let text = self.js("return document.getElementById('main')?.innerText || document.body.innerText").await;
                panic!("timed out waiting for {what} ({expr}); screenshot {}; page text:\n{}", shot.display(), text.as_str().unwrap_or(""));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_for(&self, css: &str) -> WebElement {
        self.until(&format!("document.querySelector({})", js_str(css)), &format!("element {css}")).await;
        self.driver.find(By::Css(css)).await.unwrap()
    }

    pub async fn click(&self, css: &str) {
        let el = self.wait_for(css).await;
        self.until(&format!("(e => e && !e.disabled)(document.querySelector({}))", js_str(css)), &format!("{css} to be enabled")).await;
        el.scroll_into_view().await.unwrap();
        el.click().await.unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.wait_for(css).await;
        el.clear().await.unwrap();
        if !text.is_empty() {
            el.send_keys(text).await.unwrap();
        }
    }

    /// Picks an option of a <select> the way a user does (which fires `change`).
    pub async fn choose(&self, select_css: &str, value: &str) {
        self.click(&format!("{select_css} option[value={}]", js_str(value))).await;
    }

    /// The rendered text of the element `css` names. Pages that update live may replace the element between
    /// finding and reading it; then it is found again.
    pub async fn text(&self, css: &str) -> String {
        for _ in 0..10 {
            match self.wait_for(css).await.text().await {
                Ok(text) => return text,
                Err(e) if matches!(e.as_inner(), thirtyfour::error::WebDriverErrorInner::StaleElementReference(_)) => {
                    continue
                }
                Err(e) => panic!("reading the text of {css}: {e}"),
            }
        }
        panic!("{css} kept being replaced while its text was read")
    }

    pub async fn go(&self, route: &str) {
        self.driver.goto(format!("{}{route}", self.base)).await.unwrap();
    }

    /// Signs in with `token` through the form and waits for the project display.
    pub async fn sign_in(&self, token: &str, project_name: &str) {
        self.go("#/signin").await;
        self.fill("#token", token).await;
        self.click("#sign-in").await;
        self.until(
            &format!("document.querySelector('#project-name')?.textContent === {}", js_str(project_name)),
            &format!("signed in to {project_name}"),
        )
        .await;
    }

    pub async fn sign_out(&self) {
        self.click("#sign-out").await;
        self.wait_for("#token").await;
    }

    /// The names of the rows of the image list, in order, once it has loaded.
    pub async fn row_names(&self) -> Vec<String> {
        self.until("document.querySelector('#result-count') && !document.querySelector('main[aria-busy]')", "the image list").await;
        let v = self.js("return [...document.querySelectorAll('#images-table tbody tr')].map(r => r.dataset.name)").await;
        v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
    }

    /// Waits for the list to show exactly `expected` (after a navigation that changes it).
    pub async fn expect_rows(&self, expected: &[String], what: &str) {
        let want = serde_json::to_string(expected).unwrap();
        self.until(
            &format!(
                "!document.querySelector('main[aria-busy]') && JSON.stringify([...document.querySelectorAll('#images-table tbody tr')].map(r => r.dataset.name)) === {}",
                js_str(&want)
            ),
            what,
        )
        .await;
    }

    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        if let Err(e) = self.driver.screenshot(&path).await {
            eprintln!("screenshot {name} failed: {e}");
        }
        path
    }

    /// Saves a screenshot for the documentation under `docs/screenshots/` (and the usual one).
    pub async fn doc_screenshot(&self, name: &str) {
        let path = self.screenshot(name).await;
        let dir = doc_screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&path, dir.join(format!("{name}.png"))).unwrap_or_else(|e| panic!("copying {} into {}: {e}", path.display(), dir.display()));
    }

    /// Fails if the page is wider than the viewport (a horizontal scroll bar).
    pub async fn assert_no_horizontal_scroll(&self, page: &str) {
        let v = self
            .js("const d = document.documentElement; return [d.scrollWidth, d.clientWidth, window.innerWidth, document.body.scrollWidth]")
            .await;
        let n: Vec<i64> = v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
        assert!(n[0] <= n[1] && n[3] <= n[1], "{page}: page is {}px wide in a {}px viewport (innerWidth {}): it scrolls sideways", n[0].max(n[3]), n[1], n[2]);
    }
}

/// Where the screenshots the documentation shows are kept (`docs/screenshots/`).
pub fn doc_screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
}

pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("console-screenshots")
}

pub fn js_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

pub fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect::<String>().chars().take(60).collect()
}

pub fn names(range: impl Iterator<Item = usize>) -> Vec<String> {
    range.map(|i| format!("disk-{i:02}")).collect()
}
