//! What every demo hands back: readable text for people, JSON data for machines, and the
//! invariant checks that decide the exit status.

use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;

/// One invariant a demo verified (or found broken).
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short statement of the invariant, e.g. "never two processes in the critical section".
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// The evidence, e.g. "checked after each of 412 events".
    pub detail: String,
}

/// The result of one demo.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The `--demo` name.
    pub demo: &'static str,
    /// One-line title.
    pub title: String,
    /// Whether every check held.
    pub ok: bool,
    /// The invariants checked.
    pub checks: Vec<Check>,
    /// Machine-readable results (demo-specific shape).
    pub data: Value,
    /// The human-readable explanation and tables.
    #[serde(skip)]
    pub text: String,
}

impl Report {
    /// An empty report; add text, data and checks, then [`Report::finish`].
    pub fn new(demo: &'static str, title: impl Into<String>) -> Self {
        Self {
            demo,
            title: title.into(),
            ok: true,
            checks: vec![],
            data: Value::Null,
            text: String::new(),
        }
    }

    /// Appends a paragraph (a blank line follows it).
    pub fn para(&mut self, s: impl AsRef<str>) {
        for line in s.as_ref().trim_end().lines() {
            self.text.push_str(&wrap(line, 96));
        }
        self.text.push('\n');
    }

    /// Appends a rendered table.
    pub fn table(&mut self, t: &Table) {
        self.text.push_str(&t.render());
        self.text.push('\n');
    }

    /// Records an invariant check.
    pub fn check(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.ok &= ok;
        self.checks.push(Check {
            name: name.into(),
            ok,
            detail: detail.into(),
        });
    }

    /// The report as text: title, body, then the checks.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let head = format!("== {} — {}", self.demo, self.title);
        let _ = writeln!(s, "{head}\n{}\n", "=".repeat(head.chars().count()));
        s.push_str(&self.text);
        let _ = writeln!(s, "Invariants:");
        for c in &self.checks {
            let _ = writeln!(
                s,
                "  [{}] {} — {}",
                if c.ok { "PASS" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        s
    }
}

/// A plain-text table with aligned columns.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    right: Vec<bool>,
}

impl Table {
    /// A table with these column headings; a heading starting with '>' is right-aligned (the '>'
    /// is not printed).
    pub fn new(header: &[&str]) -> Self {
        let right = header.iter().map(|h| h.starts_with('>')).collect();
        let header = header
            .iter()
            .map(|h| h.trim_start_matches('>').to_string())
            .collect();
        Self {
            header,
            rows: vec![],
            right,
        }
    }

    /// Adds a row (missing cells print empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, indented by two spaces.
    pub fn render(&self) -> String {
        let n = self.header.len();
        let mut w: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::from(" ");
            for (i, width) in w.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = width - c.chars().count();
                s.push(' ');
                if self.right[i] {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    s.push_str(&" ".repeat(pad));
                }
                if i + 1 < n {
                    s.push_str(" |");
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(&self.header);
        let rule: Vec<String> = w.iter().map(|k| "-".repeat(*k)).collect();
        out.push_str(&line(&rule).replace(" | ", "-+-"));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

/// Word-wraps one line at `width` columns (continuation lines keep the first line's indent).
pub fn wrap(line: &str, width: usize) -> String {
    let indent: String = line.chars().take_while(|c| *c == ' ').collect();
    let mut out = String::new();
    let mut cur = indent.clone();
    for word in line.split_whitespace() {
        if cur.trim().is_empty() {
            cur.push_str(word);
        } else if cur.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&cur);
            out.push('\n');
            cur = format!("{indent}{word}");
        } else {
            cur.push(' ');
            cur.push_str(word);
        }
    }
    out.push_str(&cur);
    out.push('\n');
    out
}

/// Formats nanoseconds as milliseconds with `digits` decimals and an explicit sign.
pub fn ms_signed(ns: i64, digits: usize) -> String {
    format!("{:+.*}", digits, ns as f64 / 1e6)
}

/// Formats nanoseconds as milliseconds with `digits` decimals.
pub fn ms(ns: i64, digits: usize) -> String {
    format!("{:.*}", digits, ns as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&["name", ">n"]);
        t.row(vec!["alpha".into(), "1".into()]);
        t.row(vec!["b".into(), "100".into()]);
        let s = t.render();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "  name  |   n");
        assert_eq!(lines[1], "  ------+----");
        assert_eq!(lines[2], "  alpha |   1");
        assert_eq!(lines[3], "  b     | 100");
    }

    #[test]
    fn a_failed_check_fails_the_report() {
        let mut r = Report::new("x", "t");
        r.check("a", true, "");
        assert!(r.ok);
        r.check("b", false, "broken");
        assert!(!r.ok);
        assert!(r.render_text().contains("[FAIL] b — broken"));
    }
}
