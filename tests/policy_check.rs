//! `gestor policy check` on a corpus of bad policy files: one clear error
//! each, at its line and column, exit 1, never a panic; the example files
//! (docs/policy.md) are valid. The daemon refuses to start on a bad file
//! with the same message.

mod common;

use common::gestor_bin;
use std::path::Path;
use std::process::Command;

const BAD: &str = "tests/fixtures/policies/bad";
const GOOD: &str = "tests/fixtures/policies/good";

/// (file, line, column, a fragment of the message)
const CORPUS: &[(&str, usize, usize, &str)] = &[
    ("bad_duration.toml", 7, 7, "bad duration \"30 seconds\""),
    ("bad_label.toml", 3, 22, "label \"=x\" is not key=value"),
    ("bad_unit.toml", 6, 9, "bad memory limit \"512 furlongs\""),
    ("duplicate_name.toml", 7, 8, "a second rule named \"a\""),
    ("empty_selector.toml", 3, 10, "an empty selector"),
    ("keep_least_without_resource.toml", 1, 1, "needs `resource`"),
    (
        "key_of_another_verdict.toml",
        7,
        9,
        "`count` is not a key of a limit rule",
    ),
    ("missing_key.toml", 1, 1, "a limit rule needs `above`"),
    (
        "negative_bound.toml",
        5,
        23,
        "max_kills_per_cycle is 0 or more",
    ),
    ("no_rules.toml", 1, 1, "no rule"),
    (
        "shadowed_rule.toml",
        8,
        10,
        "rule \"batch-cpu\" never applies",
    ),
    ("syntax_error.toml", 2, 10, "invalid basic string"),
    ("unknown_action.toml", 5, 10, "unknown action \"nuke\""),
    ("unknown_resource.toml", 5, 12, "unknown resource \"gpu\""),
    ("unknown_rule_key.toml", 6, 1, "unknown field `threshold`"),
    ("unknown_selector_key.toml", 3, 12, "unknown field `tpye`"),
    (
        "unknown_signal.toml",
        5,
        10,
        "unknown signal \"cpu.most.avg10\"",
    ),
    ("unknown_top_key.toml", 1, 3, "unknown field `rules`"),
    ("unknown_verdict.toml", 4, 11, "unknown verdict \"evict\""),
    ("wrong_side.toml", 6, 9, "use `above`"),
    ("wrong_type.toml", 5, 9, "invalid type: string \"two\""),
];

#[test]
fn every_bad_file_gets_one_error_at_its_position() {
    let mut seen = Vec::new();
    for (file, line, column, fragment) in CORPUS {
        let path = Path::new(BAD).join(file);
        let out = Command::new(gestor_bin())
            .args(["policy", "check"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{file}: one error: {stderr}");
        let prefix = format!("{}:{line}:{column}: ", path.display());
        assert!(
            lines[0].starts_with(&prefix) && lines[0].contains(fragment),
            "{file}: want {prefix}...{fragment}, got {stderr}"
        );
        seen.push(file.to_string());
    }
    // Every file of the corpus is in the table.
    let mut files: Vec<String> = std::fs::read_dir(BAD)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    seen.sort();
    assert_eq!(files, seen);
}

#[test]
fn the_example_files_are_valid() {
    for entry in std::fs::read_dir(GOOD).unwrap() {
        let path = entry.unwrap().path();
        let out = Command::new(gestor_bin())
            .args(["policy", "check"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
    }
}

#[test]
fn the_daemon_refuses_to_start_on_a_bad_file_with_the_same_message() {
    let path = Path::new(BAD).join("bad_unit.toml");
    let out = Command::new(gestor_bin())
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--logger-url",
            "",
            "--policy",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "policy file {}: line 6, column 9: bad memory limit",
            path.display()
        )),
        "{stderr}"
    );
}
