//! The linter on a directory of realistic bad configs: every planted problem (marked
//! `# expect: RULE` on its line, or in `<file>.expect` for JSON) is reported exactly once, at
//! that line, and nothing else is reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lockstep_connectors::{load, LoadOptions};
use lockstep_lint::{lint, Context, Profile};

fn bad_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bad-connectors")
}

/// `(file name, line, rule)` → how many times it is expected.
fn planted(dir: &Path) -> BTreeMap<(String, usize, String), usize> {
    let mut out = BTreeMap::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("bad-connectors dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let text = std::fs::read_to_string(&path).expect("read");
        if let Some(json_name) = name.strip_suffix(".expect") {
            let json = std::fs::read_to_string(dir.join(json_name)).expect("json beside .expect");
            for line in text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            {
                let (key, rules) = line.split_once(':').expect("KEY: RULES");
                let needle = format!("\"{}\"", key.trim());
                let at = json
                    .lines()
                    .position(|l| l.trim_start().starts_with(&needle))
                    .unwrap_or_else(|| panic!("{key} not in {json_name}"))
                    + 1;
                for rule in rules.split(',') {
                    *out.entry((json_name.to_string(), at, rule.trim().to_string()))
                        .or_default() += 1;
                }
            }
        } else if name.ends_with(".yaml") {
            for (i, line) in text.lines().enumerate() {
                if let Some((_, rules)) = line.split_once("# expect:") {
                    for rule in rules.split(',') {
                        *out.entry((name.clone(), i + 1, rule.trim().to_string()))
                            .or_default() += 1;
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_planted_problem_is_reported_once_at_its_line() {
    let dir = bad_dir();
    let set = load(&dir, &LoadOptions::default()).expect("the bad configs load");
    let report = lint(
        &set.manifests,
        &Profile::named("default").expect("profile"),
        &Context::default(),
    );
    let mut found: BTreeMap<(String, usize, String), usize> = BTreeMap::new();
    for f in report.active() {
        let loc = f.location.as_ref().expect("every finding has a location");
        let file = loc
            .file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        *found
            .entry((file, loc.line, f.rule.to_string()))
            .or_default() += 1;
    }
    let expected = planted(&dir);
    assert!(
        expected.len() >= 30,
        "the fixture plants many problems: {}",
        expected.len()
    );
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !found.contains_key(*k))
        .collect();
    let extra: Vec<_> = found
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    let twice: Vec<_> = found
        .iter()
        .filter(|(k, n)| expected.get(*k) != Some(n) && expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && twice.is_empty(),
        "missing: {missing:#?}\nunexpected: {extra:#?}\nwrong count: {twice:#?}"
    );
    // The justified suppression is kept, silenced, with its reason.
    assert!(report
        .findings
        .iter()
        .any(|f| f.rule == "LS606" && f.connector == "payments-cdc" && f.suppressed.is_some()));
    // No secret value of the fixtures leaks into any output.
    for out in [
        lockstep_lint::render::text(&report),
        lockstep_lint::render::json(&report),
        lockstep_lint::render::sarif(&report),
    ] {
        for secret in ["Winter2024!", "s3cr3t", "kafka-pw"] {
            assert!(!out.contains(secret), "{secret} leaked");
        }
    }
}

#[test]
fn the_project_examples_have_nothing_above_info() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/connectors/local");
    for env in [None, Some("dr")] {
        let set = load(
            &root,
            &LoadOptions {
                env: env.map(str::to_string),
                ..Default::default()
            },
        )
        .expect("examples load");
        for profile in ["default", "regulated"] {
            let report = lint(
                &set.manifests,
                &Profile::named(profile).expect("profile"),
                &Context::default(),
            );
            let above_info: Vec<_> = report
                .active()
                .filter(|f| f.severity > lockstep_lint::Severity::Info)
                .collect();
            assert!(above_info.is_empty(), "{env:?}/{profile}: {above_info:#?}");
        }
    }
}
