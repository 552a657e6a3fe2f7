//! Replays every fuzz input kept in the repository (`fuzz/corpus/<target>/`,
//! and `fuzz/artifacts/<target>/` when present) through the same functions the
//! `cargo fuzz` targets call (`tollgate_core::fuzz`), so `cargo test` checks
//! them on stable without libFuzzer. README, "Fuzzing (issue #10)".

#![allow(clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use tollgate_core::fuzz::{self, EncodedStatus, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(target: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["corpus", "artifacts"] {
        let Ok(dir) = std::fs::read_dir(fuzz_dir().join(sub).join(target)) else {
            continue;
        };
        for entry in dir.flatten() {
            let path = entry.path();
            if path.is_file() {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_target_has_a_corpus_and_every_input_holds() {
    let mut failures = Vec::new();
    for (name, run) in TARGETS {
        let files = inputs(name);
        assert!(!files.is_empty(), "fuzz/corpus/{name}/ is empty");
        for path in files {
            let data = std::fs::read(&path).unwrap_or_default();
            if let Err(v) = run(&data) {
                failures.push(format!("{}: {v}", path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_stray_corpus_folders() {
    let Ok(dir) = std::fs::read_dir(fuzz_dir().join("corpus")) else {
        panic!("no fuzz/corpus");
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            TARGETS.iter().any(|(t, _)| *t == name),
            "fuzz/corpus/{name} belongs to no target"
        );
    }
}

/// The rate-limit seeds, written by the core's own encoder:
/// `cargo test -p tollgate-core --test fuzz_corpus -- --ignored`.
#[test]
#[ignore]
fn write_ratelimit_seeds() {
    let h = |k: &str, v: &str| (k.to_string(), v.to_string());
    type Case<'a> = (u64, Vec<EncodedStatus<'a>>, Vec<(String, String)>);
    let cases: Vec<Case> = vec![
        (
            1,
            vec![(1, Some((100, 2, "per-minute")), 99, Some((59, 0)))],
            vec![],
        ),
        (
            2,
            vec![
                (1, Some((1000, 4, "tokens-day")), 10, Some((3600, 5))),
                (2, Some((5, 1, "")), 0, Some((1, 999_999_999))),
            ],
            vec![h("x-ratelimit", "1"), h("retry-after", "1")],
        ),
        (2, vec![], vec![]),
        (0, vec![(0, None, 0, None)], vec![h("", "no name")]),
    ];
    let dir = fuzz_dir().join("corpus/ratelimit_response");
    std::fs::create_dir_all(&dir).unwrap_or_default();
    for (i, (overall, statuses, headers)) in cases.iter().enumerate() {
        let mut bytes = vec![0u8];
        bytes.extend(fuzz::encode_response(*overall, statuses, headers));
        std::fs::write(dir.join(format!("seed-encoded-{i}")), &bytes).unwrap_or_default();
    }
    // Generator inputs (odd selector): the round trip.
    for (i, g) in [
        &b"\x01\x02\x01\x02\x00\x10\x00\x00\x00\x02abc"[..],
        b"\x03\x00\x03abc\x02zz\x01\x01\x01",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(dir.join(format!("seed-generated-{i}")), g).unwrap_or_default();
    }
}
