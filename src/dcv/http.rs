//! The built-in HTTP challenge responder: serves `/.well-known/...` paths from memory on a
//! listen address for as long as certform runs. Unknown paths answer 404.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

type Paths = Arc<Mutex<BTreeMap<String, String>>>;

/// A running responder; stops when dropped.
pub struct Responder {
    paths: Paths,
    local_addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Responder {
    /// Bind `listen` (`host:port`) and start serving.
    pub async fn start(listen: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let paths: Paths = Arc::default();
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&paths));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "HTTP challenge responder stopped");
            }
        });
        Ok(Self {
            paths,
            local_addr,
            task,
        })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local_addr
    }

    /// Serve `content` at `path` until `forget`.
    pub fn serve(&self, path: &str, content: &str) {
        if let Ok(mut paths) = self.paths.lock() {
            paths.insert(path.to_string(), content.to_string());
        }
    }

    pub fn forget(&self, path: &str) {
        if let Ok(mut paths) = self.paths.lock() {
            paths.remove(path);
        }
    }
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Responder({})", self.local_addr)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(State(paths): State<Paths>, request: Request) -> Response {
    let content = paths
        .lock()
        .ok()
        .and_then(|paths| paths.get(request.uri().path()).cloned());
    match content {
        Some(content) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            content,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        response
    }

    #[tokio::test]
    async fn serves_registered_paths_only_while_registered() {
        let responder = Responder::start("127.0.0.1:0").await.expect("bind");
        let addr = responder.local_addr();
        responder.serve("/.well-known/acme-challenge/tok", "tok.thumb");
        let found = get(addr, "/.well-known/acme-challenge/tok").await;
        assert!(found.starts_with("HTTP/1.1 200"), "{found}");
        assert!(found.ends_with("tok.thumb"), "{found}");
        assert!(get(addr, "/other").await.starts_with("HTTP/1.1 404"));
        responder.forget("/.well-known/acme-challenge/tok");
        assert!(get(addr, "/.well-known/acme-challenge/tok")
            .await
            .starts_with("HTTP/1.1 404"));
    }
}
