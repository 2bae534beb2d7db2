//! Inputs that once made a fuzz target of the request parsers fail, replayed through the very code
//! of that target (NBD sessions, AK/SK `Authorization` headers, JSON-patch bodies, list queries).
//!
//! Each file in `tests/fuzz_regressions/` is named `<target>-<short hash>` and holds the raw fuzz
//! input. The target code is `fuzz/src/protocols.rs`, included here as a module, so the test needs
//! neither libFuzzer nor a nightly toolchain. See docs/fuzzing.md for how inputs get here.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

#[allow(dead_code)]
#[path = "../../../fuzz/src/protocols.rs"]
mod harness;

/// An input taking longer than this counts as a hang (fuzzing allows 10 s with sanitizers on).
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// Runs `data` through `target` on its own thread: `Err` with the panic message, or on a hang.
fn replay(target: &str, data: Vec<u8>) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let name = target.to_string();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| harness::run(&name, &data));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(TIME_LIMIT) {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(format!("no fuzz target named {target:?}")),
        Ok(Err(panic)) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())),
        Err(_) => Err(format!("still running after {TIME_LIMIT:?}")),
    }
}

#[test]
fn saved_fuzz_inputs_do_not_fail() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.map(|e| e.expect("directory entry").path()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).expect("UTF-8 file name");
        if name.starts_with('.') || name.ends_with(".md") {
            continue;
        }
        let Some((target, _hash)) = name.rsplit_once('-') else {
            failures.push(format!("{name}: not named <target>-<hash>"));
            continue;
        };
        let data = std::fs::read(path).expect("read regression input");
        if let Err(e) = replay(target, data) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "fuzz regressions fail:\n{}", failures.join("\n"));
}

/// Every target takes degenerate inputs, and the inputs its seeds are made of.
#[test]
fn targets_take_degenerate_and_typical_inputs() {
    let mut nbd_go = Vec::new();
    nbd_go.extend_from_slice(&1u32.to_be_bytes()); // client flags: fixed newstyle
    nbd_go.extend_from_slice(b"IHAVEOPT");
    nbd_go.extend_from_slice(&7u32.to_be_bytes()); // NBD_OPT_GO
    let name = harness::NBD_READ_WRITE_EXPORT.as_bytes();
    nbd_go.extend_from_slice(&(4 + name.len() as u32 + 2).to_be_bytes());
    nbd_go.extend_from_slice(&(name.len() as u32).to_be_bytes());
    nbd_go.extend_from_slice(name);
    nbd_go.extend_from_slice(&0u16.to_be_bytes());
    // NBD_CMD_WRITE of 4 bytes at 8, then NBD_CMD_READ of 16 bytes at 0, then NBD_CMD_DISC.
    for (command, offset, length) in [(1u16, 8u64, 4u32), (0, 0, 16), (2, 0, 0)] {
        nbd_go.extend_from_slice(&0x2560_9513u32.to_be_bytes());
        nbd_go.extend_from_slice(&0u16.to_be_bytes());
        nbd_go.extend_from_slice(&command.to_be_bytes());
        nbd_go.extend_from_slice(&7u64.to_be_bytes());
        nbd_go.extend_from_slice(&offset.to_be_bytes());
        nbd_go.extend_from_slice(&length.to_be_bytes());
        if command == 1 {
            nbd_go.extend_from_slice(b"data");
        }
    }
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0],
        vec![0xff; 4096],
        nbd_go,
        b"SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature=00\nGET\n/v2/images\nlimit=1\n20240102T030405Z\nhost:localhost\nx-sdk-date:20240102T030405Z".to_vec(),
        b"\x00[{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"x\"},{\"op\":\"add\",\"path\":\"/k~1v\",\"value\":\"1\"}]".to_vec(),
        b"limit=5&sort=name:asc,created_at&status=in:active,queued&created_at=gt:2024-01-01T00:00:00Z".to_vec(),
        // chunk_object: a 128 KiB + 1 plaintext encoded framed, damaged at 2 places; a stored object
        // that claims to be framed.
        [&[1, 0x01, 0x00, 0x02, 0x20, 0x00, 0x04, 0x00, 0xf0, 0x80][..], &b"framed text ".repeat(40)].concat(),
        [&[0, 0x40, 0x0d, 0x03, 0x02][..], &[0x01; 200]].concat(),
    ];
    for (name, _) in harness::TARGETS {
        for input in &inputs {
            replay(name, input.clone()).unwrap_or_else(|e| panic!("{name} on {input:?}: {e}"));
        }
    }
}
