//! JSON-RPC framing over a byte stream: `Content-Length` headers, then a JSON body.
//!
//! `lsp-server` has its own reader, but it gives up on the first malformed message and closes
//! the connection; an editor's server must instead answer a body that is not JSON with a parse
//! error and read on. So the framing is done here, and `lsp-server`'s [`Message`] types carry
//! everything that parses.

use std::io::{self, BufRead, Read, Write};

use lsp_server::{ErrorCode, Message, RequestId};

/// The largest body accepted; a larger `Content-Length` is read and thrown away.
const MAX_BODY: usize = 64 << 20;

/// What one frame of the stream held.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A well-formed message.
    Message(Message),
    /// A frame that could not be used; the error to answer with (JSON-RPC says an unreadable
    /// message gets a response whose id is `null` when no id can be read).
    Invalid {
        id: Option<RequestId>,
        code: ErrorCode,
        message: String,
    },
    /// The stream ended.
    End,
}

/// Reads one frame. Only an error of the stream itself is an `Err`; whatever bytes arrive are
/// a [`Frame`].
pub(crate) fn read(input: &mut impl BufRead) -> io::Result<Frame> {
    let mut length: Option<usize> = None;
    let mut bad_header: Option<String> = None;
    let mut line = Vec::new();
    let mut saw_header = false;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(if saw_header {
                invalid(
                    None,
                    ErrorCode::ParseError,
                    "the stream ended inside a message",
                )
            } else {
                Frame::End
            });
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            if saw_header {
                break;
            }
            // Blank lines between messages are skipped.
            continue;
        }
        saw_header = true;
        match text.split_once(':') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("content-length") => {
                match value.trim().parse::<usize>() {
                    Ok(n) => length = Some(n),
                    Err(_) => {
                        bad_header = Some(format!(
                            "`Content-Length` is not a number: `{}`",
                            value.trim()
                        ));
                    }
                }
            }
            Some(_) => {}
            None => bad_header = Some(format!("malformed header line `{text}`")),
        }
    }
    if let Some(message) = bad_header {
        return Ok(invalid(None, ErrorCode::ParseError, &message));
    }
    let Some(length) = length else {
        return Ok(invalid(
            None,
            ErrorCode::ParseError,
            "a message without `Content-Length`",
        ));
    };
    let mut body = Vec::with_capacity(length.min(MAX_BODY));
    let read = input.by_ref().take(length as u64).read_to_end(&mut body)?;
    if read < length {
        return Ok(invalid(
            None,
            ErrorCode::ParseError,
            "the stream ended inside a message",
        ));
    }
    if length > MAX_BODY {
        return Ok(invalid(
            None,
            ErrorCode::InvalidRequest,
            "the message is too large",
        ));
    }
    Ok(decode(&body))
}

/// A body as a message, or the error to answer it with.
fn decode(body: &[u8]) -> Frame {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(e) => {
            return invalid(
                None,
                ErrorCode::ParseError,
                &format!("the message is not JSON: {e}"),
            );
        }
    };
    let id = value
        .get("id")
        .and_then(|id| serde_json::from_value::<RequestId>(id.clone()).ok());
    if !value.is_object() {
        return invalid(
            id,
            ErrorCode::InvalidRequest,
            "a message must be a JSON object",
        );
    }
    match serde_json::from_value::<Message>(value) {
        Ok(message) => Frame::Message(message),
        Err(_) => invalid(
            id,
            ErrorCode::InvalidRequest,
            "the message is neither a request, a response nor a notification",
        ),
    }
}

fn invalid(id: Option<RequestId>, code: ErrorCode, message: &str) -> Frame {
    Frame::Invalid {
        id,
        code,
        message: message.to_string(),
    }
}

/// Writes a message in its frame.
pub(crate) fn write(output: &mut impl Write, message: &Message) -> io::Result<()> {
    message.write(output)
}

/// Writes an error response to a message whose id could not be read (`"id": null`), which
/// `lsp-server`'s types cannot express.
pub(crate) fn write_error_without_id(
    output: &mut impl Write,
    code: ErrorCode,
    message: &str,
) -> io::Result<()> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code as i32, "message": message },
    })
    .to_string();
    write!(output, "Content-Length: {}\r\n\r\n{body}", body.len())?;
    output.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(bytes: &[u8]) -> Vec<String> {
        let mut input = io::Cursor::new(bytes.to_vec());
        let mut out = Vec::new();
        loop {
            match read(&mut input) {
                Ok(Frame::End) | Err(_) => return out,
                Ok(Frame::Message(m)) => out.push(format!(
                    "message {}",
                    serde_json::to_string(&m).unwrap_or_default()
                )),
                Ok(Frame::Invalid { code, .. }) => out.push(format!("invalid {}", code as i32)),
            }
        }
    }

    #[test]
    fn reads_messages_and_reports_malformed_ones_without_losing_the_stream() {
        let good = br#"{"jsonrpc":"2.0","method":"exit"}"#;
        let mut bytes = format!("Content-Length: {}\r\n\r\n", good.len()).into_bytes();
        bytes.extend_from_slice(good);
        bytes.extend_from_slice(b"Content-Length: 5\r\n\r\n{oops");
        bytes.extend_from_slice(b"Content-Length: 2\r\n\r\n[]");
        bytes.extend_from_slice(b"Content-Length: 12\r\n\r\n{\"id\":true}\n");
        bytes.extend_from_slice(format!("Content-Length: {}\r\n\r\n", good.len()).as_bytes());
        bytes.extend_from_slice(good);
        assert_eq!(
            frames(&bytes),
            [
                r#"message {"method":"exit"}"#,
                "invalid -32700",
                "invalid -32600",
                "invalid -32600",
                r#"message {"method":"exit"}"#,
            ]
        );
    }

    #[test]
    fn a_frame_without_length_is_a_parse_error() {
        assert_eq!(frames(b"X-Other: 1\r\n\r\n"), ["invalid -32700"]);
        assert_eq!(frames(b"Content-Length: ten\r\n\r\n"), ["invalid -32700"]);
    }
}
