//! `wharf completions`.

use crate::harness::Cli;

#[test]
fn bash_completions() {
    let run = Cli::new().run(&["completions", "bash"]).success();
    assert!(run.stdout.contains("_wharf()"), "{}", run.stdout);
    assert!(run.stdout.contains("complete -F _wharf"), "{}", run.stdout);
    for subcommand in ["apps", "config", "releases", "login"] {
        assert!(run.stdout.contains(subcommand), "completes `{subcommand}`");
    }
    assert_eq!(run.stderr, "");
}
