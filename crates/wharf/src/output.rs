//! Terminal output: aligned tables and JSON.

use std::io::Write;

use serde::Serialize;

/// Prints `rows` under `headers`, each column as wide as its widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", render_table(headers, rows));
}

pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            let pad = widths
                .get(i)
                .copied()
                .unwrap_or(0)
                .saturating_sub(cell.chars().count());
            text.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}

/// `KEY: value` lines with the values aligned, as `wharf config` and `wharf apps info` print them.
pub fn key_values(pairs: &[(String, String)]) {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count() + 1)
        .max()
        .unwrap_or(0);
    for (key, value) in pairs {
        let label = format!("{key}:");
        println!("{label:width$} {value}");
    }
}

/// Copies an output stream (`output_stream_url`: a build's, a release phase's) to `out` as it
/// arrives, flushing each piece.
pub async fn copy_stream(
    client: &wharf_client::Client,
    url: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use futures_util::StreamExt;
    let mut stream = client.output_stream(url).await?.bytes_stream();
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk.context("the output stream broke off")?)?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_columns() {
        let out = super::render_table(
            &["NAME", "WEB URL"],
            &[
                vec!["a".into(), "x".into()],
                vec!["long-name".into(), "y".into()],
            ],
        );
        assert_eq!(out, "NAME       WEB URL\na          x\nlong-name  y\n");
    }
}
