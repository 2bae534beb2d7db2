//! Inputs that once made a fuzz target fail, replayed through the very code of that target.
//!
//! Each file in `tests/fuzz_regressions/` is named `<target>-<short hash>` (for instance
//! `vhdx-3f2a9c1e`) and holds the raw fuzz input. The target code is `fuzz/src/lib.rs`, included
//! here as a module, so the test needs neither libFuzzer nor a nightly toolchain. See
//! docs/fuzzing.md for how inputs get here.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

#[allow(dead_code)]
#[path = "../../../fuzz/src/lib.rs"]
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
        Ok(entries) => entries
            .map(|e| e.expect("directory entry").path())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    let mut failures = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 file name");
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
    assert!(
        failures.is_empty(),
        "fuzz regressions fail:\n{}",
        failures.join("\n")
    );
}

/// Every target takes degenerate inputs: empty, one byte, a sparse input describing a large file
/// of zeros, an embedded descriptor of garbage.
#[test]
fn targets_take_degenerate_inputs() {
    let mut sparse = harness::SPARSE_MAGIC.to_vec();
    sparse.extend_from_slice(&u32::MAX.to_le_bytes());
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0],
        sparse,
        harness::sparse_input(&[1u8; 5000]),
        harness::embed_descriptor(b"\xff\xfe"),
    ];
    for (name, _) in harness::TARGETS {
        for input in &inputs {
            replay(name, input.clone()).unwrap_or_else(|e| panic!("{name} on {input:?}: {e}"));
        }
    }
}

/// The sparse input encoding round-trips.
#[test]
fn sparse_inputs_round_trip() {
    let mut file = vec![0u8; 100_000];
    file[3] = 1;
    file[70_000..70_700].fill(9);
    file[99_999] = 4;
    assert_eq!(
        harness::file_from_input(&harness::sparse_input(&file)),
        file
    );
    assert_eq!(harness::file_from_input(b"plain"), b"plain");
}

/// The harness's checksum repair recomputes exactly what IMS's writers write.
#[test]
fn repair_restores_checksums() {
    use ims_formats::write::{VhdSubformat, WriteOptions};
    use ims_formats::{write_image, Format, Limits, Target};
    use std::sync::Arc;

    let mut disk = vec![0u8; 3 << 20];
    disk[..5000].fill(7);
    disk[2_000_000..2_000_100].fill(9);
    let raw = ims_formats::open(Arc::new(disk), Format::Raw, &Limits::default()).expect("open raw");
    let opts = WriteOptions {
        threads: 1,
        vhd_subformat: VhdSubformat::Fixed,
        vhdx_block_size: Some(1 << 20),
        ..Default::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    // (format, CRC fields to damage; negative offsets count from the end of the file)
    let cases: [(Format, &[i64]); 4] = [
        (Format::Zvhd, &[60, 64 + 28, -4]),
        (Format::Zvhd2, &[60, -4, -64 + 44]),
        (Format::Vhd, &[-512 + 64]),
        (
            Format::Vhdx,
            &[
                (64 << 10) + 4,
                (128 << 10) + 4,
                (192 << 10) + 4,
                (256 << 10) + 4,
            ],
        ),
    ];
    for (format, fields) in cases {
        let path = dir.path().join(format.as_str());
        let file = std::fs::File::create(&path).expect("create");
        write_image(&*raw, format, Target::Seekable(&file), &opts, &|_| {}).expect("write");
        let original = std::fs::read(&path).expect("read");
        let mut bytes = original.clone();
        assert!(
            !harness::repair(format, &mut bytes),
            "{format}: repair changed a valid file"
        );
        for &field in fields {
            let at = if field < 0 {
                bytes.len() - field.unsigned_abs() as usize
            } else {
                field as usize
            };
            bytes[at..at + 4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        }
        assert!(ims_formats::open(Arc::new(bytes.clone()), format, &Limits::default()).is_err());
        assert!(
            harness::repair(format, &mut bytes),
            "{format}: nothing repaired"
        );
        assert!(
            bytes == original,
            "{format}: repair did not restore the checksums"
        );
    }
}
