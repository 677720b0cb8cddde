//! `wharf domains`, `wharf maintenance` and `wharf open`: how users reach an app through the
//! router, and what they see when they get it wrong.

use crate::assert_cli_snapshot;
use crate::harness::{Cli, Server};

#[test]
fn domains_maintenance_and_open() {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    cli.run(&["apps", "create", "shop"]).success();
    cli.run(&["apps", "create", "blog"]).success();
    assert_cli_snapshot!(
        "domains_add",
        cli.run(&["domains", "add", "www.shop.test", "-a", "shop"])
            .success()
            .transcript()
    );
    assert_cli_snapshot!(
        "domains_list",
        cli.run(&["domains", "-a", "shop"]).success().transcript()
    );
    let listed = cli
        .run(&["domains", "-a", "shop", "--json"])
        .success()
        .json();
    assert_eq!(listed[1]["hostname"], "www.shop.test");
    assert_eq!(listed[1]["kind"], "custom");
    assert_cli_snapshot!(
        "domains_taken",
        cli.run(&["domains", "add", "www.shop.test", "-a", "blog"])
            .failure()
            .transcript()
    );
    assert_cli_snapshot!(
        "domains_invalid",
        cli.run(&["domains", "add", "https://blog.test/", "-a", "blog"])
            .failure()
            .transcript()
    );
    assert_cli_snapshot!(
        "domains_remove",
        cli.run(&["domains", "remove", "www.shop.test", "-a", "shop"])
            .success()
            .transcript()
    );

    assert_cli_snapshot!(
        "maintenance",
        cli.run(&["maintenance", "on", "-a", "shop"])
            .success()
            .transcript()
    );
    assert_eq!(
        cli.run(&["maintenance", "-a", "shop"]).success().stdout,
        "on\n"
    );
    let json = cli
        .run(&["maintenance", "off", "-a", "shop", "--json"])
        .success()
        .json();
    assert_eq!(json["maintenance"], false);

    assert_eq!(
        cli.run(&["open", "-a", "shop"]).success().stdout,
        format!("http://shop.localhost:{}/\n", server.router_port)
    );
    assert_eq!(
        cli.run(&["open", "/admin", "-a", "shop"]).success().stdout,
        format!("http://shop.localhost:{}/admin\n", server.router_port)
    );
}
