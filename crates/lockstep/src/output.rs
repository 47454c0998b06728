//! `--output table|json|yaml`: every command builds a serialisable view and renders it one way.
//! Tables are for people; json and yaml carry the same fields for machines, so a script never has
//! to parse a table.

use std::io::Write;

use clap::ValueEnum;
use comfy_table::{presets::NOTHING, ContentArrangement, Table};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// JSON for scripts (`jq`).
    Json,
    /// YAML for scripts and review.
    Yaml,
}

/// A value that can be shown as a table as well as serialised.
pub trait TableView {
    fn headers(&self) -> Vec<&'static str>;
    fn rows(&self) -> Vec<Vec<String>>;
    /// Lines printed under the table (details that do not fit columns, e.g. a task's trace).
    fn footer(&self) -> Vec<String> {
        Vec::new()
    }
}

pub fn render<T: Serialize + TableView>(format: OutputFormat, value: &T) -> anyhow::Result<String> {
    Ok(match format {
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(value)?;
            s.push('\n');
            s
        }
        OutputFormat::Yaml => serde_yaml_ng::to_string(value)?,
        OutputFormat::Table => {
            let mut table = Table::new();
            table
                .load_preset(NOTHING)
                .set_content_arrangement(ContentArrangement::Disabled)
                .set_header(value.headers());
            for row in value.rows() {
                table.add_row(row);
            }
            let mut s = table
                .lines()
                .map(|l| l.trim_end().to_string())
                .collect::<Vec<_>>()
                .join("\n");
            s.push('\n');
            for line in value.footer() {
                s.push_str(&line);
                s.push('\n');
            }
            s
        }
    })
}

pub fn print<T: Serialize + TableView>(format: OutputFormat, value: &T) -> anyhow::Result<()> {
    let text = render(format, value)?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Rows(Vec<(String, u32)>);

    impl TableView for Rows {
        fn headers(&self) -> Vec<&'static str> {
            vec!["NAME", "TASKS"]
        }
        fn rows(&self) -> Vec<Vec<String>> {
            self.0
                .iter()
                .map(|(n, t)| vec![n.clone(), t.to_string()])
                .collect()
        }
        fn footer(&self) -> Vec<String> {
            vec!["note".into()]
        }
    }

    #[test]
    fn renders_each_format() {
        let value = Rows(vec![("orders-cdc".into(), 1), ("a".into(), 12)]);
        let table = render(OutputFormat::Table, &value).expect("table");
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].contains("NAME") && lines[0].contains("TASKS"));
        assert!(lines[1].contains("orders-cdc"));
        assert_eq!(lines[3], "note");
        let json: serde_json::Value =
            serde_json::from_str(&render(OutputFormat::Json, &value).expect("json"))
                .expect("valid json");
        assert_eq!(json[1][0], "a");
        let yaml = render(OutputFormat::Yaml, &value).expect("yaml");
        assert!(yaml.contains("orders-cdc"));
    }
}
