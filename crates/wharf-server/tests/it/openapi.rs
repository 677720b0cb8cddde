use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::harness::{Backend, TestServer};

/// The document people and tools read is reviewed like code: any change shows up as a snapshot diff.
#[test]
fn the_openapi_document_is_stable() {
    let document = serde_json::to_value(wharf_server::openapi_document()).unwrap();
    insta::assert_json_snapshot!("openapi", document);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_openapi_3_1_and_every_path_is_served() {
    let server = TestServer::start(Backend::Sqlite).await;
    server.create_app("doc-app").await;
    let reply = server.get("/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    let document = reply.body;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(
        document,
        serde_json::to_value(wharf_server::openapi_document()).unwrap()
    );

    let paths = document["paths"].as_object().unwrap();
    for (path, operations) in paths {
        let concrete = path
            .replace("{app}", "doc-app")
            .replace("{release}", "1")
            .replace("{build}", "0e6f0a9e-4a4b-4c6c-9a51-0f5a0c5f2b11")
            .replace("{id}", "0e6f0a9e-4a4b-4c6c-9a51-0f5a0c5f2b11");
        for method in operations.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut request = server.request(method.clone(), &concrete);
            if method != Method::GET && method != Method::DELETE {
                request = request.json(&serde_json::json!({}));
            }
            let reply = server.send(request).await;
            let no_route =
                reply.status == StatusCode::NOT_FOUND && reply.message().starts_with("no route");
            assert!(
                !no_route && reply.status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but not served"
            );
            assert!(
                !reply.status.is_server_error(),
                "{method} {path}: {reply:?}"
            );
            // Every documented status is one the document lists.
            let listed = &operations[method.as_str().to_lowercase()]["responses"];
            assert!(
                listed.get(reply.status.as_str()).is_some(),
                "{method} {path} answered {} which is not documented",
                reply.status
            );
        }
    }
    // Error bodies match the documented ErrorBody shape.
    let schema = &document["components"]["schemas"]["ErrorBody"];
    assert_eq!(schema["required"], serde_json::json!(["id", "message"]));
    let _: Value = document;
    server.stop().await;
}
