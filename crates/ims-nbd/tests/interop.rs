//! Real clients against the server: qemu-img, qemu-io and qemu-nbd (Debian's qemu-utils) over TCP,
//! in the clear and over TLS with a pre-shared key (qemu's `tls-creds-psk`, GnuTLS).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ims_formats::{Format, Limits, ReadAt};
use ims_nbd::{
    Export, ExportTable, FileBackend, NbdServer, PskKeys, PskTls, ReadWriteBackend, ServerConfig,
};
use rand::Rng;
use tokio::process::Command;
use tokio::sync::oneshot;

const MIB: u64 = 1 << 20;
const DISK: u64 = 8 * MIB;
/// Data runs of the source disk; everything else is a hole.
const DATA: [(u64, u64); 3] = [(0, 192 << 10), (3 * MIB, 640 << 10), (7 * MIB + 4096, 8192)];

/// A running server on 127.0.0.1:0 with a scratch directory and the source disk.
struct Served {
    port: u16,
    table: Arc<ExportTable>,
    dir: tempfile::TempDir,
    source: Vec<u8>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Served {
    async fn start() -> Served {
        Served::start_with(None).await
    }

    /// A server that requires TLS with the key of `identity`.
    async fn start_tls(identity: &str, key_hex: &str) -> Served {
        let keys = PskKeys::parse(&format!("{identity}:{key_hex}\n")).unwrap();
        Served::start_with(Some(PskTls::new(keys).unwrap())).await
    }

    async fn start_with(tls: Option<PskTls>) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let mut source = vec![0u8; DISK as usize];
        let mut rng = rand::thread_rng();
        let file = File::create(dir.path().join("source.raw")).unwrap();
        file.set_len(DISK).unwrap();
        for (offset, len) in DATA {
            let run = &mut source[offset as usize..(offset + len) as usize];
            rng.fill(run);
            run[0] |= 1; // never all zeros
            file.write_all_at(run, offset).unwrap();
        }
        let table = Arc::new(ExportTable::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = match tls {
            Some(tls) => NbdServer::with_tls(table.clone(), ServerConfig::default(), Arc::new(tls)),
            None => NbdServer::new(table.clone()),
        };
        let task = tokio::spawn(async move {
            server
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
        });
        Served {
            port,
            table,
            dir,
            source,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn url(&self, name: &str) -> String {
        format!("nbd://127.0.0.1:{}/{}", self.port, name)
    }

    /// Publishes `export` under a fresh unguessable name.
    fn publish(&self, export: Export) -> String {
        let name = secret_name();
        self.table.insert(name.clone(), export);
        name
    }

    /// The source disk opened by our own reader in `format` (after `qemu-img convert` for non-raw).
    async fn image_export(&self, format: &str) -> String {
        let path = if format == "raw" {
            self.path("source.raw")
        } else {
            let out = self.path(&format!("source.{format}"));
            qemu(&[
                "convert",
                "-f",
                "raw",
                "-O",
                format,
                path_str(&self.path("source.raw")),
                path_str(&out),
            ])
            .await;
            out
        };
        let file: Arc<dyn ReadAt> = Arc::new(File::open(path).unwrap());
        let image =
            ims_formats::open(file, format.parse::<Format>().unwrap(), &Limits::default()).unwrap();
        self.publish(Export::from_disk_image(Arc::from(image)))
    }

    /// A read-write export of a copy of the source; returns (name, path of the copy).
    fn file_export(&self, generic: bool) -> (String, PathBuf) {
        let path = self.path(&format!("volume-{}.raw", secret_name()));
        std::fs::copy(self.path("source.raw"), &path).unwrap();
        let file = File::options().read(true).write(true).open(&path).unwrap();
        let export = if generic {
            ReadWriteBackend::export(Arc::new(file)).unwrap()
        } else {
            FileBackend::export(file).unwrap()
        };
        (self.publish(export), path)
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap();
    }
}

fn secret_name() -> String {
    let bytes: [u8; 16] = rand::thread_rng().gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs a qemu tool; returns (success, stdout + stderr).
async fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program} is installed: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs qemu-img and insists it succeeds; returns its output.
async fn qemu(args: &[&str]) -> String {
    let (ok, text) = run("qemu-img", args).await;
    assert!(ok, "qemu-img {args:?} failed: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_img_convert_reads_the_guest_disk() {
    let s = Served::start().await;
    for format in ["raw", "qcow2", "vmdk", "vpc"] {
        let name = s.image_export(format).await;
        let out = s.path(&format!("out-{format}.raw"));
        qemu(&[
            "convert",
            "-f",
            "raw",
            "-O",
            "raw",
            &s.url(&name),
            path_str(&out),
        ])
        .await;
        let got = std::fs::read(&out).unwrap();
        // vpc rounds the disk up to its CHS geometry: compare the source part, then zeros.
        assert!(got.len() as u64 >= DISK, "{format}");
        assert!(
            got[..DISK as usize] == s.source[..],
            "{format}: converted disk differs from the source"
        );
        assert!(got[DISK as usize..].iter().all(|&b| b == 0), "{format}");
    }
    let name = s.image_export("qcow2").await;
    qemu(&[
        "compare",
        "-f",
        "raw",
        "-F",
        "raw",
        path_str(&s.path("source.raw")),
        &s.url(&name),
    ])
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_img_map_reports_the_holes() {
    let s = Served::start().await;
    let name = s.image_export("qcow2").await;
    let text = qemu(&["map", "--output=json", "-f", "raw", &s.url(&name)]).await;
    let map: Vec<serde_json::Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let mut covered = 0;
    let mut holes = 0;
    for entry in &map {
        let start = entry["start"].as_u64().unwrap();
        let length = entry["length"].as_u64().unwrap();
        let data = entry["data"].as_bool().unwrap();
        let zero = entry["zero"].as_bool().unwrap();
        assert_eq!(start, covered, "contiguous map: {text}");
        covered += length;
        let in_data = DATA
            .iter()
            .any(|&(o, l)| start < o + l && o < start + length);
        if data {
            assert!(!zero || !in_data, "{entry}");
        } else {
            holes += length;
            assert!(zero, "holes read as zeros: {entry}");
            assert!(!in_data, "a data run reported as a hole: {entry}");
        }
    }
    assert_eq!(covered, DISK);
    let data_len: u64 = DATA.iter().map(|d| d.1).sum();
    // qcow2 allocates whole 64 KiB clusters: the holes are everything but the clusters holding data.
    assert!(
        holes >= DISK - data_len - 4 * 65536,
        "holes reported: {holes} of {DISK}: {text}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_io_writes_to_a_read_write_export() {
    let s = Served::start().await;
    for generic in [false, true] {
        let (name, path) = s.file_export(generic);
        let (ok, text) = run(
            "qemu-io",
            &[
                "-f",
                "raw",
                "-c",
                "write -P 0xab 1M 64k",
                "-c",
                "flush",
                &s.url(&name),
            ],
        )
        .await;
        assert!(ok && !text.contains("failed"), "qemu-io: {text}");
        let mut expected = s.source.clone();
        expected[MIB as usize..(MIB + 65536) as usize].fill(0xab);
        assert!(
            std::fs::read(&path).unwrap() == expected,
            "only the written range changed"
        );
        // Read back through NBD too.
        let (ok, text) = run(
            "qemu-io",
            &["-f", "raw", "-c", "read -P 0xab 1M 64k", &s.url(&name)],
        )
        .await;
        assert!(
            ok && !text.contains("failed") && !text.contains("mismatch"),
            "qemu-io: {text}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_io_cannot_write_to_a_read_only_export() {
    let s = Served::start().await;
    let name = s.image_export("raw").await;
    let (ok, text) = run(
        "qemu-io",
        &["-f", "raw", "-c", "write -P 0xab 1M 64k", &s.url(&name)],
    )
    .await;
    // qemu refuses to open a read-only NBD export for writing, or the write fails.
    assert!(
        !ok || text.contains("failed") || text.contains("read-only") || text.contains("ermission"),
        "{text}"
    );
    assert!(!text.contains("wrote 65536"), "{text}");
    eprintln!("qemu-io on a read-only export: {text}");
    assert!(std::fs::read(s.path("source.raw")).unwrap() == s.source);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_img_convert_writes_a_whole_disk() {
    let s = Served::start().await;
    let (name, path) = s.file_export(false);
    // Fill the target with garbage first, so zeros must really be written.
    std::fs::write(&path, vec![0xffu8; DISK as usize]).unwrap();
    qemu(&[
        "convert",
        "-n",
        "-f",
        "raw",
        "-O",
        "raw",
        path_str(&s.path("source.raw")),
        &s.url(&name),
    ])
    .await;
    assert!(std::fs::read(&path).unwrap() == s.source);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_revoked_names_are_refused_and_nothing_is_listed() {
    let s = Served::start().await;
    let name = s.image_export("raw").await;
    qemu(&["info", "-f", "raw", &s.url(&name)]).await;
    let (ok, text) = run("qemu-img", &["info", "-f", "raw", &s.url("not-a-name")]).await;
    assert!(!ok, "unknown export opened: {text}");
    s.table.remove(&name);
    let (ok, text) = run("qemu-img", &["info", "-f", "raw", &s.url(&name)]).await;
    assert!(!ok, "revoked export opened: {text}");

    let other = s.image_export("raw").await;
    let port = s.port.to_string();
    let (ok, text) = run(
        "qemu-nbd",
        &["--list", "--bind", "127.0.0.1", "--port", &port],
    )
    .await;
    assert!(ok, "qemu-nbd --list: {text}");
    assert!(text.contains("exports available: 0"), "{text}");
    assert!(!text.contains(&other), "a secret name was listed: {text}");
    eprintln!("qemu-nbd --list: {text}");
    s.stop().await;
}

/// The key the TLS tests' server knows, for identity `qemu` (qemu's default PSK username).
const PSK_HEX: &str = "8b7bb0b6c3a5e1cc47f4cc9dd1f81e0c71c4d1b2a0a9e95c5b3f3c9f2b6c1d0e";

/// A qemu `tls-creds-psk` directory holding `keys.psk` with `identity:key_hex`.
fn psk_dir(s: &Served, name: &str, identity: &str, key_hex: &str) -> PathBuf {
    let dir = s.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keys.psk"), format!("{identity}:{key_hex}\n")).unwrap();
    dir
}

/// `--object` and `--image-opts` arguments opening `export` over TLS with the keys in `dir`.
fn tls_args(s: &Served, dir: &Path, identity: &str, export: &str) -> Vec<String> {
    vec![
        "--object".into(),
        format!(
            "tls-creds-psk,id=tls0,endpoint=client,dir={},username={identity}",
            dir.display()
        ),
        "--image-opts".into(),
        format!(
            "driver=nbd,host=127.0.0.1,port={},export={export},tls-creds=tls0",
            s.port
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_img_convert_and_qemu_io_write_over_tls_psk() {
    let s = Served::start_tls("qemu", PSK_HEX).await;
    let dir = psk_dir(&s, "psk", "qemu", PSK_HEX);

    let name = s.image_export("qcow2").await;
    let out = s.path("out-tls.raw");
    let mut args: Vec<String> = vec!["convert".into()];
    args.extend(tls_args(&s, &dir, "qemu", &name));
    args.extend(["-O".into(), "raw".into(), path_str(&out).into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    qemu(&args).await;
    assert!(
        std::fs::read(&out).unwrap() == s.source,
        "converted disk differs from the source"
    );

    let (name, path) = s.file_export(false);
    let mut args: Vec<String> = tls_args(&s, &dir, "qemu", &name);
    args.extend(["-c".into(), "write -P 0xab 1M 64k".into()]);
    args.extend(["-c".into(), "flush".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, text) = run("qemu-io", &args).await;
    assert!(
        ok && text.contains("wrote 65536"),
        "qemu-io over TLS: {text}"
    );
    let mut expected = s.source.clone();
    expected[MIB as usize..(MIB + 65536) as usize].fill(0xab);
    assert!(std::fs::read(&path).unwrap() == expected);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_without_tls_or_with_a_wrong_key_is_refused() {
    let s = Served::start_tls("qemu", PSK_HEX).await;
    let name = s.image_export("raw").await;

    // In the clear: the server requires TLS.
    let (ok, text) = run("qemu-img", &["info", "-f", "raw", &s.url(&name)]).await;
    assert!(!ok, "plain NBD accepted by a TLS server: {text}");
    eprintln!("qemu-img without TLS: {text}");
    let port = s.port.to_string();
    let (ok, text) = run(
        "qemu-nbd",
        &["--list", "--bind", "127.0.0.1", "--port", &port],
    )
    .await;
    assert!(!ok, "plain listing accepted: {text}");

    // A wrong key, then an unknown identity.
    let wrong = PSK_HEX.replace('8', "9");
    for (dir, identity) in [
        (psk_dir(&s, "wrong-key", "qemu", &wrong), "qemu"),
        (psk_dir(&s, "wrong-identity", "mallory", PSK_HEX), "mallory"),
    ] {
        let mut args: Vec<String> = vec!["info".into()];
        args.extend(tls_args(&s, &dir, identity, &name));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, text) = run("qemu-img", &args).await;
        assert!(!ok, "{identity}: opened with a wrong key: {text}");
        eprintln!("qemu-img with a wrong key ({identity}): {text}");
    }

    // The right key lists (nothing, names are secret) and opens.
    let dir = psk_dir(&s, "right", "qemu", PSK_HEX);
    let mut args: Vec<String> = vec!["info".into()];
    args.extend(tls_args(&s, &dir, "qemu", &name));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = qemu(&args).await;
    assert!(text.contains("virtual size: 8 MiB"), "{text}");
    let object = format!(
        "tls-creds-psk,id=tls0,endpoint=client,dir={},username=qemu",
        dir.display()
    );
    let (ok, text) = run(
        "qemu-nbd",
        &[
            "--list",
            "--object",
            &object,
            "--tls-creds",
            "tls0",
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
        ],
    )
    .await;
    assert!(ok, "qemu-nbd --list over TLS: {text}");
    assert!(text.contains("exports available: 0"), "{text}");

    // GnuTLS held to TLS 1.2 is served with an ECDHE-PSK cipher.
    let tls12 = format!("{object},priority=NORMAL:-VERS-TLS1.3");
    let opts = format!("driver=nbd,host=127.0.0.1,port={port},export={name},tls-creds=tls0");
    let text = qemu(&["info", "--object", &tls12, "--image-opts", &opts]).await;
    assert!(text.contains("virtual size: 8 MiB"), "{text}");
    s.stop().await;
}
