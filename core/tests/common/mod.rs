//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `promtool check metrics` on `exposition` and returns its output, or
/// panics with that output when promtool finds a problem. Without promtool
/// (plain `cargo test` on a machine that lacks it) the check is skipped with
/// a line saying so, and the output is empty.
pub fn promtool_check(exposition: &str) -> String {
    if !beluga_test_support::available(beluga_test_support::External::Promtool) {
        return String::new();
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: run scripts/test.sh, which installs Debian's `prometheus`");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{report}\n--- exposition ---\n{exposition}",
        out.status
    );
    report
}

/// A sample line parsed back from the text formats.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: String,
}

/// Parses `name{a="x",b="y"} value` with the exposition formats' escapes,
/// independently of the encoder's code.
pub fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).expect("a name");
    let name = line[..name_end].to_string();
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let mut end = 0;
        loop {
            let (start, c) = chars.next().expect("label or }");
            if c == '}' {
                end = start + 1;
                break;
            }
            if c == ',' {
                continue;
            }
            let eq = body[start..].find('=').unwrap() + start;
            let label = body[start..eq].to_string();
            while chars.next_if(|&(i, _)| i <= eq + 1).is_some() {}
            let mut value = String::new();
            loop {
                let (_, c) = chars.next().expect("closing quote");
                match c {
                    '"' => break,
                    '\\' => match chars.next().unwrap().1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    other => value.push(other),
                }
            }
            labels.push((label, value));
            let _ = end;
        }
        rest = &body[end..];
    }
    Sample {
        name,
        labels,
        value: rest.trim().to_string(),
    }
}

/// Undoes HELP escaping (`\\`, `\n`, and `\"` in OpenMetrics).
pub fn unescape_help(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next().unwrap() {
                'n' => out.push('\n'),
                other => out.push(other),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Every sample line of an exposition.
pub fn samples(exposition: &str) -> Vec<Sample> {
    exposition
        .split('\n')
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(parse_sample)
        .collect()
}
