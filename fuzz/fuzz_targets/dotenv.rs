//! `wharf_core::dotenv::parse` and `render`: parse never panics, errors name a line of the input,
//! the vars it returns have distinct keys and no NUL, and `render` writes them so that `parse`
//! reads exactly the same vars back (and renders them the same way again).

#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use wharf_core::dotenv;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match dotenv::parse(text) {
        Ok(vars) => {
            let mut keys = HashSet::new();
            for (key, value) in &vars {
                assert!(keys.insert(key.as_str()), "key {key} appears twice");
                assert!(!value.contains('\0'), "NUL in the value of {key}");
            }
            let rendered = dotenv::render(&vars);
            let again = dotenv::parse(&rendered)
                .unwrap_or_else(|e| panic!("render() gave {rendered:?}, which fails: {e}"));
            assert_eq!(again, vars, "rendered {rendered:?}");
            assert_eq!(dotenv::render(&again), rendered);
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
