//! SCIM bodies for the answers hyper gives by itself. A request hyper cannot parse (a malformed
//! head, a URI over its 64 KB, a head over its buffer, more header fields than it reads) never
//! reaches the server's code: hyper writes a bare `400`, `414` or `431` and closes. Every answer
//! the service gives is a SCIM error, so the connection's writes pass through [`ScimAnswers`],
//! which turns exactly those bare answers into SCIM Error responses. Responses of our own code
//! always carry a body when they are errors, so a bodiless 400/414/431 can only be hyper's.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose bare parse-error answers are rewritten as SCIM errors.
pub struct ScimAnswers<S> {
    inner: S,
    /// A rewritten answer being written: its bytes, how many are written, and the length of the
    /// write it stands for (what `poll_write` reports once it is out).
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<S> ScimAnswers<S> {
    pub fn new(inner: S) -> ScimAnswers<S> {
        ScimAnswers { inner, pending: None }
    }
}

/// The SCIM answer for one of hyper's bare answers (`buf` is one whole response head with an
/// empty body), or `None` for anything else.
pub fn rewrite(buf: &[u8]) -> Option<Vec<u8>> {
    let rest = buf.strip_prefix(b"HTTP/1.1 ").or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let status = std::str::from_utf8(rest.get(..3)?).ok()?;
    let detail = match status {
        "400" => "the request is not valid HTTP (its request line or a header could not be read)",
        "414" => "the request URI is too long",
        "431" => "the request's header fields are too large or too many",
        _ => return None,
    };
    let text = std::str::from_utf8(buf).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let bodiless = head.lines().any(|l| l.eq_ignore_ascii_case("content-length: 0"));
    if !body.is_empty() || !bodiless {
        return None;
    }
    let reason = head.lines().next().unwrap_or_default().get(13..).unwrap_or_default();
    let json = serde_json::json!({"schemas": [scim_core::schema::URN_ERROR], "status": status, "detail": detail}).to_string();
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
            scim_core::edge::SCIM_JSON,
            json.len()
        )
        .into_bytes(),
    )
}

impl<S: AsyncWrite + Unpin> ScimAnswers<S> {
    /// Writes what is left of a rewritten answer; ready with the length it stands for.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<usize>>> {
        while let Some((bytes, written, stands_for)) = &mut self.pending {
            if *written == bytes.len() {
                let n = *stands_for;
                self.pending = None;
                return Poll::Ready(Ok(Some(n)));
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(None))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ScimAnswers<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ScimAnswers<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.pending.is_none()
            && let Some(answer) = rewrite(buf)
        {
            self.pending = Some((answer, 0, buf.len()));
        }
        if let Some(n) = ready!(self.poll_pending(cx))? {
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_parse_error_answers_are_rewritten() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Sun, 06 Dec 2026 10:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(rewrite(bare).expect("rewritten")).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n") && head.contains("application/scim+json"));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!((v["status"].as_str(), v["schemas"][0].as_str()), (Some("431"), Some(scim_core::schema::URN_ERROR)));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        // our own responses are never touched: a 400 with a body, a 204, anything else
        assert!(rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}").is_none());
        assert!(rewrite(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewrite(b"{\"schemas\":[]}").is_none());
        assert!(rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n").is_none(), "not a whole head");
    }
}
