//! A small HTTP server on the standard library: answers every request on $PORT with a greeting.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8000".to_owned());
    let listener = TcpListener::bind(("0.0.0.0", port.parse::<u16>().unwrap_or(8000)))?;
    eprintln!("rust-web listening on port {port}");
    let dyno = std::env::var("DYNO").unwrap_or_else(|_| "?".to_owned());
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        // Read the request head; the body, if any, is not needed.
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let body = format!("Hello from rust-web! (served by {dyno})\n");
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    Ok(())
}
