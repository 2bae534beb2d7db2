//! Browser tests of the web console (`/console/`): the real server in-process on a free port,
//! Debian's headless Chromium driven through chromedriver (WebDriver) with `thirtyfour`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`scripts/install-browser` installs them);
//! without them every browser test fails with a message saying so. Screenshots go to
//! `target/console-screenshots/`. The tests run one at a time (one browser at once on small machines).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ims_client::{Client, CreateImage, ListParams, MemberStatus, Role};
use ims_server::Settings;
use serde_json::{json, Value};
use tempfile::TempDir;
use thirtyfour::extensions::cdp::ChromeDevTools;
use thirtyfour::prelude::*;
use tokio::sync::oneshot;

const ADMIN_TOKEN: &str = "console-test-admin-token";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);
const WAIT: Duration = Duration::from_secs(15);

/// One browser at a time: the machines have two cores.
static BROWSER_SLOT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// --- the server ------------------------------------------------------------------------------

/// The real server on 127.0.0.1:0 with a temporary data directory (as `tests/api/common.rs`).
struct TestServer {
    url: String,
    admin: Client,
    _dir: TempDir,
    _shutdown: oneshot::Sender<()>,
}

struct Tenant {
    project_id: String,
    token: String,
    token_id: String,
    client: Client,
}

impl TestServer {
    async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings { data_dir: dir.path().join("data"), admin_token: Some(ADMIN_TOKEN.to_string()), ..Settings::default() };
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
        TestServer { url, admin, _dir: dir, _shutdown: tx }
    }

    async fn tenant(&self, name: &str, role: Role) -> Tenant {
        let project = self.admin.create_project(name).await.unwrap();
        let created = self.admin.create_user(&format!("{name}-user"), &project.id, role).await.unwrap();
        let token = created.token.token.clone().unwrap();
        Tenant { project_id: project.id, client: self.admin.with_token(token.clone()), token, token_id: created.token.id }
    }
}

fn raw_image(name: &str) -> CreateImage {
    CreateImage { name: Some(name.into()), disk_format: Some("raw".into()), container_format: Some("bare".into()), ..Default::default() }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
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
struct ChromeDriverProcess {
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
struct Console {
    driver: WebDriver,
    server: TestServer,
    base: String,
    _chromedriver: ChromeDriverProcess,
    _profile: TempDir,
    _slot: tokio::sync::MutexGuard<'static, ()>,
}

fn require_browser() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER].into_iter().filter(|p| !Path::new(p).exists()).collect();
    assert!(
        missing.is_empty(),
        "the console browser tests need Debian's chromium and chromium-driver, but {} is missing: \
         run scripts/install-browser (or apt-get install -y chromium chromium-driver) first",
        missing.join(" and ")
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_chromedriver(log: &Path) -> ChromeDriverProcess {
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
    async fn start() -> Console {
        let slot = BROWSER_SLOT.lock().await;
        require_browser();
        let server = TestServer::start().await;
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
    async fn quit(self) {
        let Console { driver, .. } = self;
        let _ = driver.quit().await;
    }

    async fn cdp(&self, method: &str, params: Value) {
        ChromeDevTools::new(self.driver.handle.clone()).execute_cdp_with_params(method, params).await.unwrap();
    }

    /// Sets the CSS viewport exactly (what a phone of that width shows).
    async fn set_viewport(&self, (width, height): (u32, u32)) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}),
        )
        .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.driver.execute(script, Vec::<Value>::new()).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}")).json().clone()
    }

    /// Waits until `expr` (a JavaScript expression) is truthy; returns its value.
    async fn until(&self, expr: &str, what: &str) -> Value {
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

    async fn wait_for(&self, css: &str) -> WebElement {
        self.until(&format!("document.querySelector({})", js_str(css)), &format!("element {css}")).await;
        self.driver.find(By::Css(css)).await.unwrap()
    }

    async fn click(&self, css: &str) {
        let el = self.wait_for(css).await;
        self.until(&format!("(e => e && !e.disabled)(document.querySelector({}))", js_str(css)), &format!("{css} to be enabled")).await;
        el.scroll_into_view().await.unwrap();
        el.click().await.unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    async fn fill(&self, css: &str, text: &str) {
        let el = self.wait_for(css).await;
        el.clear().await.unwrap();
        if !text.is_empty() {
            el.send_keys(text).await.unwrap();
        }
    }

    /// Picks an option of a <select> the way a user does (which fires `change`).
    async fn choose(&self, select_css: &str, value: &str) {
        self.click(&format!("{select_css} option[value={}]", js_str(value))).await;
    }

    async fn text(&self, css: &str) -> String {
        self.wait_for(css).await.text().await.unwrap()
    }

    async fn go(&self, route: &str) {
        self.driver.goto(format!("{}{route}", self.base)).await.unwrap();
    }

    /// Signs in with `token` through the form and waits for the project display.
    async fn sign_in(&self, token: &str, project_name: &str) {
        self.go("#/signin").await;
        self.fill("#token", token).await;
        self.click("#sign-in").await;
        self.until(
            &format!("document.querySelector('#project-name')?.textContent === {}", js_str(project_name)),
            &format!("signed in to {project_name}"),
        )
        .await;
    }

    async fn sign_out(&self) {
        self.click("#sign-out").await;
        self.wait_for("#token").await;
    }

    /// The names of the rows of the image list, in order, once it has loaded.
    async fn row_names(&self) -> Vec<String> {
        self.until("document.querySelector('#result-count') && !document.querySelector('main[aria-busy]')", "the image list").await;
        let v = self.js("return [...document.querySelectorAll('#images-table tbody tr')].map(r => r.dataset.name)").await;
        v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
    }

    /// Waits for the list to show exactly `expected` (after a navigation that changes it).
    async fn expect_rows(&self, expected: &[String], what: &str) {
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

    async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        if let Err(e) = self.driver.screenshot(&path).await {
            eprintln!("screenshot {name} failed: {e}");
        }
        path
    }

    /// Fails if the page is wider than the viewport (a horizontal scroll bar).
    async fn assert_no_horizontal_scroll(&self, page: &str) {
        let v = self
            .js("const d = document.documentElement; return [d.scrollWidth, d.clientWidth, window.innerWidth, document.body.scrollWidth]")
            .await;
        let n: Vec<i64> = v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
        assert!(n[0] <= n[1] && n[3] <= n[1], "{page}: page is {}px wide in a {}px viewport (innerWidth {}): it scrolls sideways", n[0].max(n[3]), n[1], n[2]);
    }
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("console-screenshots")
}

fn js_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect::<String>().chars().take(60).collect()
}

fn names(range: impl Iterator<Item = usize>) -> Vec<String> {
    range.map(|i| format!("disk-{i:02}")).collect()
}

// --- the tests -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_files_are_served_with_a_strict_policy() {
    let server = TestServer::start().await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = http.get(format!("{}/console", server.url)).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/console/");
    let r = http.get(format!("{}/console/", server.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let etag = r.headers()["etag"].clone();
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="js/app.js">"#));
    let r = http.get(format!("{}/console/", server.url)).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(r.status(), 304);
    let r = http.get(format!("{}/console/js/views/images.js", server.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    // Every module the page loads, followed through its imports, is served as JavaScript.
    let mut pending = vec!["js/app.js".to_string()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(path) = pending.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let r = http.get(format!("{}/console/{path}", server.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} is listed in console/assets.rs");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"), "{path}");
        let text = r.text().await.unwrap();
        let dir = path.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
        for line in text.lines().filter(|l| l.starts_with("import ")) {
            let spec = line.rsplit_once(" from \"").map(|(_, s)| s.trim_end_matches("\";")).unwrap();
            let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
            for seg in spec.split('/') {
                match seg {
                    "." => {}
                    ".." => {
                        parts.pop();
                    }
                    s => parts.push(s),
                }
            }
            pending.push(parts.join("/"));
        }
    }
    assert!(seen.len() >= 10, "{seen:?}");
    for asset in ["console.css", "favicon.svg"] {
        let r = http.get(format!("{}/console/{asset}", server.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
    let r = http.get(format!("{}/console/nope.js", server.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = http.get(format!("{}/console/../v2/images", server.url)).send().await.unwrap();
    assert_ne!(r.status(), 200, "no way out of the console's files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_shows_the_project_and_a_bad_token_is_refused_in_plain_words() {
    let c = Console::start().await;

    // A bad token: a plain-words error, no HTML, nothing stored, no token in the URL.
    c.fill("#token", "not-a-real-token").await;
    c.click("#sign-in").await;
    let error = c.until("document.querySelector('#signin-error [role=alert]')?.textContent", "the sign-in error").await;
    let error = error.as_str().unwrap();
    assert!(error.contains("this token was not accepted"), "{error}");
    assert!(error.contains("requires authentication"), "the API's message is shown: {error}");
    assert!(!error.contains('<'), "no markup in the message: {error}");
    assert_eq!(c.js("return sessionStorage.length").await, json!(0));
    c.screenshot("signin-error-desktop").await;

    // The admin token: signed in, the project shown, the token kept in sessionStorage only.
    c.fill("#token", ADMIN_TOKEN).await;
    c.click("#sign-in").await;
    c.until("document.querySelector('#project-name')?.textContent === 'admin'", "the project display").await;
    let who = c.text("#whoami").await;
    assert!(who.contains("admin") && who.contains("in project"), "{who}");
    assert!(c.js("return !!document.querySelector('#nav-admin')").await.as_bool().unwrap(), "admins see Administration");
    let url = c.driver.current_url().await.unwrap().to_string();
    assert!(!url.contains(ADMIN_TOKEN), "the token is never in the URL: {url}");
    let stored = c.js("return JSON.stringify(sessionStorage)").await;
    assert!(stored.as_str().unwrap().contains(ADMIN_TOKEN));
    assert_eq!(c.js("return localStorage.length").await, json!(0));

    // A token revoked while signed in ends the session with a plain explanation.
    let tenant = c.server.tenant("short-lived", Role::Member).await;
    c.sign_out().await;
    c.sign_in(&tenant.token, "short-lived").await;
    assert!(!c.js("return !!document.querySelector('#nav-admin')").await.as_bool().unwrap(), "members do not see Administration");
    c.server.admin.revoke_token(&tenant.token_id).await.unwrap();
    c.click("#nav-usage").await;
    let reason = c.until("document.querySelector('.signin-page .msg-info')?.textContent", "the end of the session").await;
    assert!(reason.as_str().unwrap().contains("no longer accepted"), "{reason}");
    assert_eq!(c.js("return sessionStorage.getItem('ims.console.credential')").await, Value::Null, "the revoked token is forgotten");
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_uploads_with_progress_to_100_percent_and_the_image_becomes_active() {
    let c = Console::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web-server.raw");
    let size = 6 * 1024 * 1024 + 4096;
    std::fs::write(&path, pattern(size, 7)).unwrap();

    c.sign_in(ADMIN_TOKEN, "admin").await;
    c.click("#nav-create").await;
    let input = c.wait_for("#upload-file").await;
    input.send_keys(path.to_str().unwrap()).await.unwrap();
    c.until("document.querySelector('#upload-name').value === 'web-server'", "the name from the file").await;
    assert_eq!(c.js("return document.querySelector('#upload-disk-format').value").await, json!("raw"));
    c.fill("#upload-tags", "web, linux").await;
    c.click("#start-upload").await;

    c.until("document.querySelector('#upload-phase')?.textContent.startsWith('Done')", "the upload to finish").await;
    let numbers = c.text("#upload-progress-text").await;
    assert!(numbers.contains("(100%)"), "progress reaches 100%: {numbers}");
    assert!(numbers.contains("6 MiB of 6 MiB") && numbers.contains("/s"), "bytes and rate: {numbers}");
    let bar = c.js("const p = document.querySelector('#upload-progress'); return [p.value, p.max]").await;
    assert_eq!(bar, json!([size, size]), "the progress bar is full");
    assert!(c.text("#upload-phase").await.contains("is active"));
    c.screenshot("upload-done-desktop").await;

    // The list shows it active, with its exact size.
    c.go("#/images?tab=private").await;
    c.wait_for("#images-table tr[data-name='web-server']").await;
    let row = "#images-table tr[data-name='web-server']";
    assert_eq!(c.js(&format!("return document.querySelector(\"{row} [data-status]\").dataset.status")).await, json!("active"));
    assert_eq!(c.js(&format!("return document.querySelector(\"{row} .size\").dataset.bytes")).await, json!(size.to_string()));
    assert_eq!(c.js(&format!("return document.querySelector(\"{row} .size\").textContent")).await, json!("6 MiB"));
    let image = c.server.admin.list_all_images(&ListParams { name: Some("web-server".into()), ..Default::default() }).await.unwrap();
    assert_eq!(image.len(), 1);
    assert_eq!(image[0].size, Some(size as u64));
    let mut tags = image[0].tags.clone();
    tags.sort();
    assert_eq!(tags, vec!["linux", "web"]);

    // Download, streamed into the file the user picks (File System Access API; the picker is
    // stood in for by a page script, since a headless browser shows no dialog).
    c.click(&format!("{row} a.image-link")).await;
    c.wait_for("#download").await;
    c.js(
        "window.__saved = {name: null, bytes: 0, closed: false}; \
         window.showSaveFilePicker = async (opts) => { window.__saved.name = opts.suggestedName; return { \
           createWritable: async () => new WritableStream({ \
             write(chunk) { window.__saved.bytes += chunk.byteLength; }, \
             close() { window.__saved.closed = true; } }) }; }; return null",
    )
    .await;
    c.click("#download").await;
    c.until("window.__saved.closed", "the streamed download").await;
    assert_eq!(c.js("return window.__saved").await, json!({"name": "web-server.raw", "bytes": size, "closed": true}));
    assert!(c.text("#download-progress").await.starts_with("Saved web-server.raw"));

    // Without that API: the in-memory fallback saves the file through the browser's downloads.
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    c.cdp("Browser.setDownloadBehavior", json!({"behavior": "allow", "downloadPath": downloads.to_str().unwrap()})).await;
    c.js("window.showSaveFilePicker = undefined; return null").await;
    c.click("#download").await;
    let saved = downloads.join("web-server.raw");
    let deadline = Instant::now() + WAIT;
    while std::fs::metadata(&saved).map(|m| m.len()).unwrap_or(0) != size as u64 {
        assert!(Instant::now() < deadline, "the fallback download never arrived in {}", downloads.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(std::fs::read(&saved).unwrap() == pattern(size, 7), "the downloaded bytes are the uploaded ones");
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_filters_sorts_and_pages_through_30_images() {
    let c = Console::start().await;
    let admin = &c.server.admin;
    for i in 0..30usize {
        let even = i % 2 == 0;
        let img = admin
            .create_image(&CreateImage {
                disk_format: Some(if even { "raw" } else { "qcow2" }.into()),
                tags: if even { vec!["even".into()] } else { vec![] },
                ..raw_image(&format!("disk-{i:02}"))
            })
            .await
            .unwrap();
        if even && i % 3 == 0 {
            admin.upload_bytes(&img.id, pattern(1024 * (i + 1), i as u64)).await.unwrap();
        }
    }
    c.sign_in(ADMIN_TOKEN, "admin").await;
    c.go("#/images?tab=private").await;
    assert_eq!(c.row_names().await.len(), 25, "25 per page by default");

    c.choose("#page-size", "10").await;
    c.choose("#sort", "name:asc").await;
    c.expect_rows(&names(0..10), "page 1 by name").await;
    c.click("#page-next").await;
    c.expect_rows(&names(10..20), "page 2 by name").await;
    c.click("#page-next").await;
    c.expect_rows(&names(20..30), "page 3 by name").await;
    c.until("document.querySelector('.pager')?.dataset.more === 'no'", "the list to know nothing follows").await;
    let next_disabled = c.js("return document.querySelector('#page-next').disabled").await;
    assert_eq!(next_disabled, json!(true), "no page after the last");
    assert!(!c.text("#result-count").await.contains("more"), "the count does not promise more");
    c.click("#page-prev").await;
    c.expect_rows(&names(10..20), "back to page 2").await;
    c.click("#page-prev").await;
    c.expect_rows(&names(0..10), "back to page 1").await;

    // A column header sorts: name, ascending then descending.
    c.click("th button[data-sort='name']").await;
    c.expect_rows(&names(0..30).into_iter().rev().take(10).collect::<Vec<_>>(), "sorted by name, descending").await;
    let sort = c.js("return document.querySelector('th[aria-sort]').getAttribute('aria-sort')").await;
    assert_eq!(sort, json!("descending"));
    c.click("th button[data-sort='size']").await;
    c.until("document.querySelector('th[aria-sort]')?.textContent.startsWith('Size')", "sorted by size").await;
    let sizes = c.js("return [...document.querySelectorAll('#images-table tbody .size')].map(s => Number(s.dataset.bytes || -1))").await;
    let sizes: Vec<i64> = sizes.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let mut sorted = sizes.clone();
    sorted.sort();
    assert_eq!(sizes, sorted, "ascending sizes");

    // Filters: exact name, tag, status, disk format.
    c.click("#reset-filters").await;
    c.row_names().await;
    c.fill("#filter-name", "disk-07").await;
    c.click("#apply-filters").await;
    c.expect_rows(&["disk-07".to_string()], "the name filter").await;
    c.screenshot("list-filtered-desktop").await;

    c.click("#reset-filters").await;
    c.choose("#page-size", "50").await;
    c.choose("#sort", "name:asc").await;
    c.fill("#filter-tag", "even").await;
    c.click("#apply-filters").await;
    c.expect_rows(&names((0..30).step_by(2)), "the tag filter").await;
    c.choose("#filter-status", "active").await;
    c.expect_rows(&names([0, 6, 12, 18, 24].into_iter()), "tag and status filters").await;
    c.fill("#filter-tag", "").await;
    c.choose("#filter-status", "").await;
    c.choose("#filter-format", "qcow2").await;
    c.expect_rows(&names((1..30).step_by(2)), "the disk format filter").await;
    let result = c.text("#result-count").await;
    assert!(result.contains("15 images"), "{result}");
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_page_edits_properties_and_tags() {
    let c = Console::start().await;
    let owner = c.server.tenant("editors", Role::Member).await;
    let img = owner
        .client
        .create_image(&json!({"name": "draft", "disk_format": "raw", "container_format": "bare", "visibility": "private", "os_distro": "ubuntu", "stale": "x"}))
        .await
        .unwrap();
    owner.client.upload_bytes(&img.id, pattern(200_000, 3)).await.unwrap();
    c.sign_in(&owner.token, "editors").await;
    c.go("#/images?tab=private").await;
    c.click("#images-table a.image-link").await;
    c.until("document.querySelector('#image-title')?.textContent.includes('draft')", "the image page").await;
    c.screenshot("image-page-desktop").await;

    // Details: name, minimum disk, protection.
    c.fill("#edit-name", "release-1").await;
    c.fill("#edit-min-disk", "20").await;
    c.click("#edit-protected").await;
    c.click("#save-details").await;
    c.until("document.querySelector('#image-title')?.textContent.includes('release-1')", "the renamed image").await;
    assert!(c.js("return document.querySelector('#delete').disabled").await.as_bool().unwrap(), "protected: delete is off");

    // Custom properties: change one, add one, remove one.
    c.fill("#prop-key", "os_distro").await;
    c.fill("#prop-value", "debian").await;
    c.click("#add-property").await;
    c.until("document.querySelector(\"tr[data-property='os_distro'] td\")?.textContent === 'debian'", "the changed property").await;
    c.fill("#prop-key", "hw_firmware_type").await;
    c.fill("#prop-value", "uefi").await;
    c.click("#add-property").await;
    c.wait_for("tr[data-property='hw_firmware_type']").await;
    c.click("button[data-remove-property='stale']").await;
    c.until("!document.querySelector(\"tr[data-property='stale']\") && !!document.querySelector('#properties-table')", "the removed property").await;

    // Tags: add two, remove one.
    c.fill("#new-tag", "golden").await;
    c.click("#add-tag").await;
    c.wait_for("li[data-tag='golden']").await;
    c.fill("#new-tag", "tmp").await;
    c.click("#add-tag").await;
    c.wait_for("li[data-tag='tmp']").await;
    c.click("button[data-remove-tag='tmp']").await;
    c.until("!document.querySelector(\"li[data-tag='tmp']\") && !!document.querySelector(\"li[data-tag='golden']\")", "the removed tag").await;

    // A refused change is explained in plain words (setting a reserved property).
    c.fill("#prop-key", "os_glance_secret").await;
    c.fill("#prop-value", "x").await;
    c.click("#add-property").await;
    let error = c.until("document.querySelector('#image-messages [role=alert]')?.textContent", "the refusal").await;
    assert!(error.as_str().unwrap().starts_with("Could not set os_glance_secret: Not allowed:"), "{error}");

    let got = owner.client.get_image(&img.id).await.unwrap();
    assert_eq!(got.name.as_deref(), Some("release-1"));
    assert_eq!(got.min_disk, 20);
    assert!(got.protected);
    assert_eq!(got.property("os_distro"), Some("debian"));
    assert_eq!(got.property("hw_firmware_type"), Some("uefi"));
    assert_eq!(got.property("stale"), None);
    assert_eq!(got.tags, vec!["golden".to_string()]);
    c.screenshot("image-page-edited-desktop").await;
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_is_accepted_by_the_second_project_in_its_own_session() {
    let c = Console::start().await;
    let owner = c.server.tenant("studio", Role::Member).await;
    let guest = c.server.tenant("guest", Role::Member).await;
    let img = owner.client.create_image(&json!({"name": "base-os", "disk_format": "raw", "container_format": "bare", "visibility": "shared"})).await.unwrap();
    owner.client.upload_bytes(&img.id, pattern(300_000, 9)).await.unwrap();

    // The owner shares it with the guest project, by name.
    c.sign_in(&owner.token, "studio").await;
    c.go(&format!("#/images/{}", img.id)).await;
    c.fill("#member-project", "guest").await;
    c.click("#add-member").await;
    c.until(
        &format!("document.querySelector(\"tr[data-member='{}'] [data-member-status]\")?.dataset.memberStatus === 'pending'", guest.project_id),
        "the pending member",
    )
    .await;
    c.sign_out().await;

    // The guest sees it waiting for an answer, and accepts it.
    c.sign_in(&guest.token, "guest").await;
    c.click("#tab-shared").await;
    c.wait_for(&format!("#pending-shares li[data-image-id='{}']", img.id)).await;
    assert!(c.row_names().await.is_empty(), "not in the list before it is accepted");
    c.screenshot("shared-pending-desktop").await;
    c.click(&format!("button[data-accept='{}']", img.id)).await;
    c.until("document.querySelector('#pending-shares')?.textContent.includes('No shares are waiting')", "no more pending shares").await;
    c.expect_rows(&["base-os".to_string()], "the accepted image in the shared tab").await;
    let m = owner.client.get_member(&img.id, &guest.project_id).await.unwrap();
    assert_eq!(m.status, "accepted");

    // Its page shows the answer and lets the guest change it.
    c.click("#images-table a.image-link").await;
    c.until("document.querySelector('#my-member-status')?.textContent === 'accepted'", "the guest's answer").await;
    c.click("#reject-share").await;
    c.until("document.querySelector('#my-member-status')?.textContent === 'rejected'", "the rejection").await;
    assert_eq!(owner.client.get_member(&img.id, &guest.project_id).await.unwrap().status, "rejected");
    guest.client.update_member_status(&img.id, &guest.project_id, MemberStatus::Accepted).await.unwrap();
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_deactivates_reactivates_and_deletes_an_image() {
    let c = Console::start().await;
    let owner = c.server.tenant("ops", Role::Member).await;
    let img = owner.client.create_image(&raw_image("old-kernel")).await.unwrap();
    owner.client.upload_bytes(&img.id, pattern(100_000, 5)).await.unwrap();

    // Members have no deactivate button.
    c.sign_in(&owner.token, "ops").await;
    c.go(&format!("#/images/{}", img.id)).await;
    c.wait_for("#delete").await;
    assert!(!c.js("return !!document.querySelector('#deactivate')").await.as_bool().unwrap());
    c.sign_out().await;

    c.sign_in(ADMIN_TOKEN, "admin").await;
    c.go(&format!("#/images/{}", img.id)).await;
    c.click("#deactivate").await;
    c.until("document.querySelector('#image-title [data-status]')?.dataset.status === 'deactivated'", "the deactivated image").await;
    assert_eq!(owner.client.get_image(&img.id).await.unwrap().status, "deactivated");
    c.screenshot("image-deactivated-desktop").await;
    c.click("#reactivate").await;
    c.until("document.querySelector('#image-title [data-status]')?.dataset.status === 'active'", "the reactivated image").await;

    // Delete asks first; cancelling keeps the image.
    c.click("#delete").await;
    c.wait_for("dialog[open]").await;
    c.screenshot("delete-confirm-desktop").await;
    c.click("dialog[open] button[value='no']").await;
    c.until("!document.querySelector('dialog')", "the dialog to close").await;
    assert!(owner.client.get_image(&img.id).await.is_ok());
    c.click("#delete").await;
    c.click("dialog[open] button[value='yes']").await;
    c.until("location.hash.startsWith('#/images') && !location.hash.includes('old-kernel') && !!document.querySelector('#result-count')", "back to the list").await;
    let err = owner.client.get_image(&img.id).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_projects_users_and_tokens() {
    let c = Console::start().await;
    c.sign_in(ADMIN_TOKEN, "admin").await;
    c.click("#nav-admin").await;
    c.fill("#new-project-name", "research").await;
    c.click("#create-project").await;
    c.wait_for("#projects-table tr[data-project='research']").await;

    c.click("#admin-tab-users").await;
    c.wait_for("#new-user-project").await;
    c.fill("#new-user-name", "rita").await;
    let research = c.server.admin.get_project("research").await.unwrap();
    c.choose("#new-user-project", &research.id).await;
    c.click("#create-user").await;
    let token = c.until("document.querySelector('#new-user-token input.secret')?.value", "rita's first token").await;
    let token = token.as_str().unwrap().to_string();
    c.wait_for("#users-table tr[data-user='rita']").await;
    c.screenshot("admin-users-desktop").await;

    c.click("#admin-tab-tokens").await;
    c.wait_for("#token-user").await;
    let rita = c.server.admin.list_users().await.unwrap().into_iter().find(|u| u.name == "rita").unwrap();
    c.choose("#token-user", &rita.id).await;
    c.click("#create-token").await;
    let issued = c.until("document.querySelector('#new-token input.secret')?.value", "the issued token").await;
    let issued = issued.as_str().unwrap().to_string();
    let issued_id = c.text("#issued-token-id").await;
    let as_rita = c.server.admin.with_token(issued.clone());
    assert_eq!(as_rita.whoami().await.unwrap().project.name, "research");
    c.click(&format!("button[data-revoke-token='{issued_id}']")).await;
    c.click("dialog[open] button[value='yes']").await;
    c.until(&format!("document.querySelector(\"button[data-revoke-token='{issued_id}']\")?.textContent === 'Revoked'"), "the revoked token").await;
    assert_eq!(as_rita.whoami().await.unwrap_err().status(), Some(401));
    assert!(c.server.admin.with_token(token).whoami().await.is_ok(), "the first token still works");
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_fit_a_phone_and_read_in_dark_mode() {
    let c = Console::start().await;
    let owner = c.server.tenant("mobile", Role::Member).await;
    for (i, name) in ["ubuntu-24.04-server-cloudimg-amd64-with-a-very-long-name", "debian-12", "windows-2022-datacenter"].iter().enumerate() {
        let img = owner
            .client
            .create_image(&json!({"name": name, "disk_format": "raw", "container_format": "bare", "visibility": "shared", "os_distro": "linux", "a_long_property_key_that_goes_on_and_on": "x".repeat(120)}))
            .await
            .unwrap();
        owner.client.upload_bytes(&img.id, pattern(50_000 * (i + 1), i as u64)).await.unwrap();
        owner.client.add_tag(&img.id, "a-rather-long-tag-name-for-wrapping").await.unwrap();
        owner.client.add_member(&img.id, "some-other-project-id-that-is-long").await.unwrap();
    }
    let first = owner.client.list_all_images(&ListParams::default()).await.unwrap().remove(0);

    c.screenshot("signin-desktop").await;
    c.sign_in(&owner.token, "mobile").await;
    let pages = [
        ("images", "#/images?tab=private".to_string(), "#images-table"),
        ("image", format!("#/images/{}", first.id), "#members-table"),
        ("create", "#/create".to_string(), "#create-form"),
        ("usage", "#/usage".to_string(), "#usage"),
        ("shared", "#/images?tab=shared".to_string(), "#pending-shares"),
    ];
    for (name, route, ready) in &pages {
        c.go(route).await;
        c.wait_for(ready).await;
        c.screenshot(&format!("{name}-desktop")).await;
        c.assert_no_horizontal_scroll(&format!("{name} at desktop width")).await;
    }
    c.set_viewport(PHONE).await;
    assert_eq!(c.js("return window.innerWidth").await, json!(PHONE.0));
    for (name, route, ready) in &pages {
        c.go(route).await;
        c.wait_for(ready).await;
        c.until("!document.querySelector('main[aria-busy]')", "the page").await;
        c.screenshot(&format!("{name}-phone")).await;
        c.assert_no_horizontal_scroll(&format!("{name} at {}px", PHONE.0)).await;
    }
    c.sign_out().await;
    c.screenshot("signin-phone").await;
    c.assert_no_horizontal_scroll("sign-in at phone width").await;

    // Dark mode: the colours follow prefers-color-scheme.
    c.set_viewport(DESKTOP).await;
    c.cdp("Emulation.setEmulatedMedia", json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]})).await;
    c.sign_in(&owner.token, "mobile").await;
    c.go(&format!("#/images/{}", first.id)).await;
    c.wait_for("#members-table").await;
    let bg = c.js("return getComputedStyle(document.body).backgroundColor").await;
    assert_eq!(bg, json!("rgb(17, 21, 28)"), "dark background");
    c.screenshot("image-dark-desktop").await;
    c.go("#/images?tab=private").await;
    c.wait_for("#images-table").await;
    c.screenshot("images-dark-desktop").await;
    c.set_viewport(PHONE).await;
    c.go("#/images?tab=private").await;
    c.wait_for("#images-table").await;
    c.screenshot("images-dark-phone").await;
    c.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyboard_reaches_the_main_actions() {
    let c = Console::start().await;
    let img = c.server.admin.create_image(&raw_image("keyboard-image")).await.unwrap();
    c.server.admin.upload_bytes(&img.id, pattern(10_000, 1)).await.unwrap();
    c.sign_in(ADMIN_TOKEN, "admin").await;
    c.go("#/images?tab=private").await;
    c.wait_for("#images-table a.image-link").await;

    // Tab from the top of a freshly loaded page, recording where focus goes and whether it shows.
    let record = "const e = document.activeElement; const s = getComputedStyle(e); \
                  return [e.id || (e.classList.contains('image-link') ? 'image-link' : e.tagName), s.outlineStyle !== 'none' && s.outlineWidth !== '0px']";
    c.driver.refresh().await.unwrap();
    c.wait_for("#images-table a.image-link").await;
    assert_eq!(c.js("return document.activeElement.tagName").await, json!("BODY"), "a page load leaves focus at the top");
    let mut reached = Vec::new();
    for _ in 0..40 {
        c.driver.action_chain().send_keys(Key::Tab).perform().await.unwrap();
        let v = c.js(record).await;
        let id = v[0].as_str().unwrap().to_string();
        assert!(v[1].as_bool().unwrap(), "{id} shows no focus outline");
        if id == "image-link" {
            reached.push(id);
            break;
        }
        reached.push(id);
    }
    for wanted in ["skip-link", "nav-images", "nav-create", "nav-admin", "sign-out", "create-image", "tab-public", "tab-shared", "filter-name", "apply-filters", "image-link"] {
        assert!(reached.iter().any(|r| r == wanted), "Tab never reached {wanted}: {reached:?}");
    }
    let pos = |id: &str| reached.iter().position(|r| r == id).unwrap();
    assert!(pos("nav-images") < pos("create-image") && pos("create-image") < pos("filter-name") && pos("filter-name") < pos("image-link"), "{reached:?}");

    // Enter opens the image; its actions are reachable with Tab too.
    c.driver.action_chain().send_keys(Key::Enter).perform().await.unwrap();
    c.until("document.activeElement?.id === 'image-title'", "focus on the image page's heading").await;
    let mut on_page = Vec::new();
    for _ in 0..6 {
        c.driver.action_chain().send_keys(Key::Tab).perform().await.unwrap();
        on_page.push(c.js(record).await[0].as_str().unwrap().to_string());
    }
    for wanted in ["download", "deactivate", "delete"] {
        assert!(on_page.iter().any(|r| r == wanted), "Tab never reached {wanted} on the image page: {on_page:?}");
    }
    c.screenshot("keyboard-focus-desktop").await;

    // Escape closes the delete dialog and gives focus back.
    c.js("document.querySelector('#delete').focus(); return null").await;
    c.driver.action_chain().send_keys(Key::Enter).perform().await.unwrap();
    c.wait_for("dialog[open]").await;
    c.driver.action_chain().send_keys(Key::Escape).perform().await.unwrap();
    c.until("!document.querySelector('dialog') && document.activeElement?.id === 'delete'", "focus back on Delete").await;
    assert!(c.server.admin.get_image(&img.id).await.is_ok());

    c.quit().await;
}
