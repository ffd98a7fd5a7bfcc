//! Reading an exposition back, independently of the encoder's code: sample
//! lines with their labels unescaped, and `# HELP` text unescaped.

/// A sample line parsed back from the text formats.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample name (`x_total`, `x_bucket`, ...).
    pub name: String,
    /// Label names and unescaped values, in order.
    pub labels: Vec<(String, String)>,
    /// The value as written.
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
