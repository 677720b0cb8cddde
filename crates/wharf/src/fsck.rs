//! `wharf fsck`: re-hashes every blob in the image store and reports what doesn't match its name,
//! what is referenced but missing, and temp files left by an interrupted write.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use serde_json::json;

use crate::output;

pub fn run(data_dir: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let data_dir = match data_dir {
        Some(dir) => dir,
        None => crate::server::default_data_dir()?,
    };
    let root = data_dir.join("images");
    if !root.is_dir() {
        bail!(
            "{} has no image store (is it a wharf data directory? pass --data-dir)",
            data_dir.display()
        );
    }
    let store = wharf_image::ImageStore::open(&root)
        .with_context(|| format!("cannot open {}", root.display()))?;
    let report = store.fsck().context("cannot check the image store")?;
    let clean = report.corrupt.is_empty() && report.missing.is_empty();
    if json {
        output::json(&json!({
            "checked": report.checked,
            "bytes": report.bytes,
            "corrupt": report.corrupt.iter().map(|(d, actual)| json!({"digest": d.to_string(), "actual": actual})).collect::<Vec<_>>(),
            "missing": report.missing.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            "stray_temp_files": report.stray_temp_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "clean": clean,
        }))?;
    } else {
        println!(
            "Checked {} blobs ({}) in {}",
            report.checked,
            wharf_core::size::human(report.bytes),
            root.display()
        );
        for (digest, actual) in &report.corrupt {
            println!("CORRUPT  {digest} (its content hashes to {actual})");
        }
        for digest in &report.missing {
            println!("MISSING  {digest} (referenced, not stored)");
        }
        for path in &report.stray_temp_files {
            println!(
                "TEMP     {} (left by an interrupted write; safe to delete)",
                path.display()
            );
        }
        if clean {
            println!("No problems found");
        }
    }
    if !clean {
        bail!(
            "the image store has {} corrupt and {} missing blobs: rebuild the affected apps (`wharf deploy`)",
            report.corrupt.len(),
            report.missing.len()
        );
    }
    Ok(())
}
