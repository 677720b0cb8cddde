//! `wharf_core::procfile::parse`: never panics, errors name a line of the input, and a Procfile
//! it accepts renders to text that parses back to the same entries.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_core::procfile::{self, Procfile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match procfile::parse(text) {
        Ok(parsed) => {
            for entry in parsed.entries() {
                let command = &entry.command;
                assert!(!command.is_empty(), "empty command in {parsed:?}");
                assert_eq!(command.trim(), command, "untrimmed command");
                assert!(!command.contains(['\n', '\r']), "multi-line {command:?}");
            }
            let rendered = parsed.render();
            let again = procfile::parse(&rendered)
                .unwrap_or_else(|e| panic!("render() gave {rendered:?}, which fails: {e}"));
            assert_eq!(again.entries(), parsed.entries(), "rendered {rendered:?}");
            assert_eq!(Procfile::new(parsed.entries().to_vec()), Ok(parsed));
        }
        Err(e) => {
            let lines = text.split('\n').count();
            assert!(
                (1..=lines).contains(&e.line()),
                "{e} (the text has {lines} lines)"
            );
        }
    }
});
