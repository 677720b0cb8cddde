//! `wharf stacks`: the stacks as a table and as JSON, and a clear refusal to make a stack
//! wharf doesn't make.

use crate::harness::{Cli, Server};

#[test]
fn stacks_are_listed_and_unknown_ones_refused() {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    let table = cli.run(&["stacks"]).success();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines[0], "=== Stacks", "{table:#?}");
    assert!(lines[1].starts_with("  NAME"), "{table:#?}");
    assert!(lines[2].starts_with("* wharf-1 "), "{table:#?}");
    assert!(
        lines[4].starts_with("  wharf-trixie") && lines[4].contains("absent"),
        "{table:#?}"
    );
    let json = cli.run(&["stacks", "--json"]).success().json();
    assert_eq!(json[2]["name"], "wharf-trixie");
    assert_eq!(json[2]["suite"], "trixie");
    let info = cli.run(&["stacks", "info", "wharf-bookworm"]).success();
    assert!(info.stdout.contains("Run image:"), "{info:#?}");
    assert!(info.stdout.contains("not made"), "{info:#?}");

    let refused = cli.run(&["stacks", "build", "heroku-24"]).failure();
    let error = refused.error();
    assert!(
        error.contains("heroku-24") && error.contains("wharf-trixie"),
        "{error}"
    );
}
