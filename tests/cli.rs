//! The command line: `snapshot` on good and bad documents, `check-config`.

mod common;

use common::gestor_bin;
use std::process::{Command, Output};

fn gestor(args: &[&str]) -> Output {
    Command::new(gestor_bin())
        .args(args)
        .env_remove("GESTOR_CONFIG")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/sysinfo/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn snapshot_prints_a_valid_document() {
    let path = fixture("valid.json");
    let out = gestor(&["snapshot", "--source", "kernel", "--sysinfo", &path]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["processes"].as_array().unwrap().len(), 3);
    assert_eq!(v["processes"][2]["comm"], "\"\\\n%s%n\u{FFFD}");
    let out = gestor(&[
        "snapshot",
        "--summary",
        "--source",
        "kernel",
        "--sysinfo",
        &path,
    ]);
    let t = text(&out);
    assert!(t.contains("3 processes in 2 containers"), "{t}");
}

#[test]
fn snapshot_rejects_bad_documents_naming_file_position_and_problem() {
    let cases = [
        ("truncated.json", "EOF while parsing"),
        ("wrong_type.json", "invalid type"),
        ("missing_field.json", "missing field `processes`"),
        ("out_of_range.json", "processes[0].mem_pct_x100"),
        ("invalid_utf8.json", "invalid UTF-8"),
        ("empty.json", "document is empty"),
    ];
    for (name, problem) in cases {
        let path = fixture(name);
        let out = gestor(&["snapshot", "--source", "kernel", "--sysinfo", &path]);
        let t = text(&out);
        assert!(!out.status.success(), "{name} accepted");
        assert!(t.contains(&path), "{name}: no file in {t}");
        assert!(t.contains(problem), "{name}: no {problem:?} in {t}");
        assert!(!t.contains("panicked"), "{t}");
    }
    let out = gestor(&[
        "snapshot",
        "--source",
        "kernel",
        "--sysinfo",
        &fixture("truncated.json"),
    ]);
    assert!(text(&out).contains("line "), "{}", text(&out));
}

#[test]
fn snapshot_of_a_document_over_256_mib_is_a_clear_error() {
    // The kernel module never writes more than 256 MiB: a bigger file is not
    // a sysinfo document. Sparse: no disk is used for it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(256 * 1024 * 1024 + 1).unwrap();
    let out = gestor(&[
        "snapshot",
        "--source",
        "kernel",
        "--sysinfo",
        path.to_str().unwrap(),
    ]);
    let t = text(&out);
    assert!(!out.status.success());
    assert!(t.contains("above the") && t.contains("byte limit"), "{t}");
}

#[test]
fn snapshot_of_a_missing_module_file_says_how_to_load_it() {
    let out = gestor(&[
        "snapshot",
        "--source",
        "kernel",
        "--sysinfo",
        "/nonexistent/sysinfo_202200075",
    ]);
    let t = text(&out);
    assert!(!out.status.success());
    assert!(
        t.contains("/nonexistent/sysinfo_202200075 does not exist"),
        "{t}"
    );
    assert!(t.contains("insmod"), "{t}");
}

#[test]
fn check_config_validates_and_prints() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "interval = 5.0\nmin_per_type = 2\n").unwrap();
    let out = gestor(&["check-config", "--config", good.to_str().unwrap()]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("min_per_type = 2") && t.contains("interval = 5.0"),
        "{t}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "min_per_tipe = 2\n").unwrap();
    let out = gestor(&["check-config", "--config", bad.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("unknown field `min_per_tipe`") && t.contains("bad.toml"),
        "{t}"
    );

    let out = Command::new(gestor_bin())
        .args(["check-config"])
        .env("GESTOR_INTERVAL", "-1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("interval"));
}
