//! What the tests that put a proxy between the binary and a sandbox share.

/// Sends a request on to `upstream` (`http://127.0.0.1:PORT`) — method, path and query, body,
/// `Authorization` and `Content-Type` — and gives back the answer: status, `Content-Type` and
/// body, or 502 when the upstream cannot be reached.
pub async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    parts: &axum::http::request::Parts,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = client
        .request(parts.method.clone(), format!("{upstream}{path}"))
        .body(body);
    for name in [
        axum::http::header::AUTHORIZATION,
        axum::http::header::CONTENT_TYPE,
    ] {
        if let Some(value) = parts.headers.get(&name) {
            request = request.header(name, value);
        }
    }
    let mut response = axum::response::Response::new(axum::body::Body::empty());
    let Ok(answer) = request.send().await else {
        *response.status_mut() = axum::http::StatusCode::BAD_GATEWAY;
        return response;
    };
    *response.status_mut() = answer.status();
    if let Some(value) = answer.headers().get(axum::http::header::CONTENT_TYPE) {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_TYPE, value.clone());
    }
    *response.body_mut() = axum::body::Body::from(answer.bytes().await.unwrap_or_default());
    response
}
