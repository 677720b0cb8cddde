//! Packs and unpacks source archives the way `wharf deploy` and the server do, for
//! `bench/build.sh` to time against `tar | gzip`:
//!
//!   cargo run --release -p wharf-image --example archive -- pack DIR OUT.tar.gz
//!   cargo run --release -p wharf-image --example archive -- unpack ARCHIVE.tar.gz DEST

use std::path::Path;
use std::process::ExitCode;

use wharf_image::archive::{self, Limits};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["pack", dir, out] => std::fs::File::create(out)
            .map_err(|e| e.to_string())
            .and_then(|file| {
                archive::pack_dir(Path::new(dir), std::io::BufWriter::new(file))
                    .map_err(|e| e.to_string())
            })
            .map(|s| format!("{} entries, {} bytes", s.entries, s.bytes)),
        ["unpack", archive, dest] => {
            let limits = Limits {
                max_archive_bytes: u64::MAX,
                max_unpacked_bytes: u64::MAX,
                ..Limits::default()
            };
            archive::unpack(Path::new(archive), Path::new(dest), &limits)
                .map(|s| format!("{} entries, {} bytes", s.entries, s.bytes))
                .map_err(|e| e.to_string())
        }
        _ => Err(
            "usage: archive pack DIR OUT.tar.gz | archive unpack ARCHIVE.tar.gz DEST".to_owned(),
        ),
    };
    match result {
        Ok(summary) => {
            eprintln!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
