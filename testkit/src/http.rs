//! One small HTTP/1.1 client over loopback TCP, for the tests and the
//! benchmark alike: requests as raw bytes, responses read by their framing.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::config::{ROUTE_PATH, SECRET};

/// How long connecting may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);
/// How long one read or write on a connection may block.
const IO_LIMIT: Duration = Duration::from_secs(20);

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Names in lower case, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    pub text: String,
    /// The body as JSON (`Null` when it is not JSON).
    pub json: Value,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A response from its raw head (status line and header lines) and body.
    fn parse(head: &[u8], body: &[u8]) -> Response {
        let head = String::from_utf8_lossy(head);
        let mut lines = head.lines();
        let status = lines.next().and_then(status_of).expect("a status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let text = String::from_utf8_lossy(body).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Response {
            status,
            headers,
            text,
            json,
        }
    }
}

/// What one request on its own connection came to, when failing to get a
/// response is an outcome rather than a test failure.
#[derive(Debug)]
pub enum Outcome {
    /// A complete response.
    Answered(Response),
    /// Nothing came back: refused, reset or closed before a byte was read.
    NoResponse,
    /// Some bytes came back, but not a whole response.
    Truncated(String),
}

/// A request that did not get a whole response.
#[derive(Debug)]
enum Failure {
    NoResponse(io::Error),
    Truncated(String, io::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NoResponse(e) => write!(f, "no response ({e})"),
            Failure::Truncated(got, e) => write!(f, "a partial response ({e}): {got:?}"),
        }
    }
}

impl Failure {
    fn new(head: &[u8], body: &[u8], error: io::Error) -> Failure {
        if head.is_empty() && body.is_empty() {
            return Failure::NoResponse(error);
        }
        let mut got = String::from_utf8_lossy(head).into_owned();
        got.push_str(&String::from_utf8_lossy(body));
        Failure::Truncated(got, error)
    }
}

/// Opens a loopback connection with bounded reads and writes.
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, CONNECT_LIMIT)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_LIMIT))?;
    stream.set_write_timeout(Some(IO_LIMIT))?;
    Ok(stream)
}

/// A keep-alive HTTP/1.1 connection to one server, opened when first used
/// and again whenever the server closed it (it does after a refused request
/// whose body it did not read, and after `Connection: close`).
pub struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    connects: usize,
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            conn: None,
            connects: 0,
            head: Vec::new(),
            body: Vec::new(),
        }
    }

    /// How many connections this client has opened.
    pub fn connects(&self) -> usize {
        self.connects
    }

    /// Sends one request (raw bytes, see [`request_bytes`]) and returns its
    /// response; panics when there is none.
    pub fn send(&mut self, req: &[u8]) -> Response {
        self.send_status(req);
        Response::parse(&self.head, &self.body)
    }

    /// Like [`Client::send`], but returns only the status, leaving the
    /// body in [`Client::body`]: nothing is parsed, for load loops.
    pub fn send_status(&mut self, req: &[u8]) -> u16 {
        // A reused connection that the server had closed (no byte of an
        // answer, then its end) never saw the request: sending it again on
        // a fresh connection is safe and keeps counts exact.
        let reused = self.conn.is_some();
        match self.exchange(req) {
            Ok(status) => status,
            Err(Failure::NoResponse(e)) if reused && closed_by_peer(&e) => self
                .exchange(req)
                .unwrap_or_else(|f| panic!("after reconnecting: {f}")),
            Err(f) => panic!("{f}"),
        }
    }

    /// The body of the last response.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Sends one request without retrying and never panics: connection
    /// failures are outcomes.
    pub fn try_send(&mut self, req: &[u8]) -> Outcome {
        match self.exchange(req) {
            Ok(_) => Outcome::Answered(Response::parse(&self.head, &self.body)),
            Err(Failure::NoResponse(_)) => Outcome::NoResponse,
            Err(Failure::Truncated(got, _)) => Outcome::Truncated(got),
        }
    }

    /// One request and its response on the open connection, or a new one.
    fn exchange(&mut self, req: &[u8]) -> Result<u16, Failure> {
        self.head.clear();
        self.body.clear();
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let stream = connect(self.addr).map_err(Failure::NoResponse)?;
                self.connects += 1;
                BufReader::with_capacity(64 * 1024, stream)
            }
        };
        conn.get_mut().write_all(req).map_err(Failure::NoResponse)?;
        // The answer to HEAD has a head only, whatever its Content-Length.
        let status_close = if req.starts_with(b"HEAD ") {
            read_message(&mut conn, &mut self.head, &mut Vec::new(), false)
        } else {
            read_message(&mut conn, &mut self.head, &mut self.body, true)
        };
        let (status, close) = status_close?;
        if !close {
            self.conn = Some(conn);
        }
        Ok(status)
    }
}

/// Whether `e` says the other end had closed the connection.
fn closed_by_peer(e: &io::Error) -> bool {
    use io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(
        e.kind(),
        BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof
    )
}

/// Reads one final response from `r` (interim `1xx` ones are skipped): the
/// status line and header lines into `head`, the body into `body`, framed
/// by `Content-Length` or else by the end of the stream. Returns the status
/// and whether the server closes the connection after it. Without
/// `has_body` (the answer to HEAD) nothing is read after the head.
fn read_message(
    r: &mut impl BufRead,
    head: &mut Vec<u8>,
    body: &mut Vec<u8>,
    has_body: bool,
) -> Result<(u16, bool), Failure> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    loop {
        head.clear();
        loop {
            let start = head.len();
            match r.read_until(b'\n', head) {
                Ok(0) => {
                    return Err(Failure::new(
                        head,
                        body,
                        io::ErrorKind::UnexpectedEof.into(),
                    ))
                }
                Ok(_) => {}
                Err(e) => return Err(Failure::new(head, body, e)),
            }
            if head[start..] == *b"\r\n" {
                head.truncate(start);
                break;
            }
        }
        let text = std::str::from_utf8(head).map_err(|_| {
            let e = invalid("the head is not UTF-8");
            Failure::new(head, body, e)
        })?;
        let mut lines = text.lines();
        let Some(status) = lines.next().and_then(status_of) else {
            return Err(Failure::new(head, body, invalid("no status line")));
        };
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let mut length = None;
        let mut close = false;
        for (name, value) in lines.filter_map(|l| l.split_once(':')) {
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("content-length") {
                let n: usize = value.parse().map_err(|_| {
                    let e = invalid("a bad content-length");
                    Failure::new(head, body, e)
                })?;
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                let e = invalid("chunked responses are not supported");
                return Err(Failure::new(head, body, e));
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        if !has_body {
            return Ok((status, close));
        }
        let read = match length {
            Some(n) => r.by_ref().take(n as u64).read_to_end(body).and_then(|got| {
                if got == n {
                    Ok(())
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                }
            }),
            None if status == 204 || status == 304 => Ok(()),
            None => {
                close = true;
                r.read_to_end(body).map(drop)
            }
        };
        return match read {
            Ok(()) => Ok((status, close)),
            Err(e) => Err(Failure::new(head, body, e)),
        };
    }
}

/// The code in a status line such as `HTTP/1.1 200 OK`.
fn status_of(line: &str) -> Option<u16> {
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// A request as raw bytes: `Host` is added, and `Content-Length` too unless
/// `headers` frame the body themselves (`content-length` or
/// `transfer-encoding`).
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    let framed = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !framed {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut req = req.into_bytes();
    req.extend_from_slice(body);
    req
}

/// A JSON POST of `body` to `path` authenticated with `secret`, plus
/// `extra` headers, as raw bytes.
pub fn post_json(path: &str, secret: &str, extra: &[(&str, &str)], body: &str) -> Vec<u8> {
    let auth = format!("Bearer {secret}");
    let mut headers = vec![
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
    ];
    headers.extend_from_slice(extra);
    request_bytes("POST", path, &headers, body.as_bytes())
}

/// Sends one request on a fresh connection (`Connection: close`) and
/// returns its response; panics when there is none.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut all = vec![("connection", "close")];
    all.extend_from_slice(headers);
    Client::new(addr).send(&request_bytes(method, path, &all, body))
}

/// Starts an authenticated JSON POST to the standard route on a fresh
/// connection: the head (with `framing` headers such as
/// `content-length: 50\r\n`) and the first `body` bytes, leaving the rest
/// of the request to the caller.
pub fn begin_request(addr: SocketAddr, framing: &str, body: &[u8]) -> TcpStream {
    let mut stream = connect(addr).unwrap();
    write!(
        stream,
        "POST {ROUTE_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\nauthorization: Bearer {SECRET}\r\n{framing}\r\n"
    )
    .unwrap();
    stream.write_all(body).unwrap();
    stream
}

/// What the server sends a request that asked `Expect: 100-continue` once
/// it is ready for the body.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// [`begin_request`] with `Expect: 100-continue`, returning once the server
/// has answered `100 Continue`. The server sends that after reading the
/// head and running the request's checks up to reading the body: an
/// admitted request then holds its in-flight slot until its body ends, and
/// a refused one has its refusal on the way ([`read_response`] reads it).
pub fn begin_request_until_continue(addr: SocketAddr, framing: &str, body: &[u8]) -> TcpStream {
    let framing = format!("expect: 100-continue\r\n{framing}");
    let mut stream = begin_request(addr, &framing, body);
    // Exactly the interim response, so that nothing after it is consumed.
    let mut interim = vec![0; CONTINUE.len()];
    stream.read_exact(&mut interim).unwrap_or_else(|e| {
        panic!(
            "no 100 Continue ({e}); got {:?}",
            String::from_utf8_lossy(&interim)
        )
    });
    assert_eq!(
        String::from_utf8_lossy(&interim),
        String::from_utf8_lossy(CONTINUE)
    );
    stream
}

/// Reads the response to a request already sent on `stream`.
pub fn read_response(stream: &mut TcpStream) -> Response {
    let (mut head, mut body) = (Vec::new(), Vec::new());
    match read_message(&mut BufReader::new(stream), &mut head, &mut body, true) {
        Ok(_) => Response::parse(&head, &body),
        Err(f) => panic!("{f}"),
    }
}

/// Parses a whole response from raw bytes.
pub fn parse_response(raw: &[u8]) -> Response {
    let (mut head, mut body) = (Vec::new(), Vec::new());
    let mut r = raw;
    match read_message(&mut r, &mut head, &mut body, true) {
        Ok(_) => Response::parse(&head, &body),
        Err(f) => panic!("{f}"),
    }
}

/// The JSON headers of a request authenticated with `SECRET`.
pub fn authed() -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".to_owned()),
        ("authorization", format!("Bearer {SECRET}")),
    ]
}

/// Borrows a header list built with owned values.
pub fn hdrs<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &[u8]) -> Result<(u16, bool, String, String), Failure> {
        let (mut head, mut body) = (Vec::new(), Vec::new());
        let mut r = raw;
        let (status, close) = read_message(&mut r, &mut head, &mut body, true)?;
        Ok((
            status,
            close,
            String::from_utf8(head).unwrap(),
            String::from_utf8(body).unwrap(),
        ))
    }

    #[test]
    fn a_body_ends_at_its_content_length_and_the_connection_stays_open() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 next";
        let (status, close, head, body) = read(raw).unwrap();
        assert_eq!((status, close), (200, false));
        assert_eq!(head, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
        assert_eq!(body, "{}");
    }

    #[test]
    fn interim_responses_are_skipped() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many Requests\r\ncontent-length: 1\r\nconnection: close\r\n\r\nx";
        let (status, close, _, body) = read(raw).unwrap();
        assert_eq!((status, close, body.as_str()), (429, true, "x"));
    }

    #[test]
    fn without_a_length_the_body_runs_to_the_end_of_the_stream() {
        let (status, close, _, body) = read(b"HTTP/1.1 400 Bad\r\n\r\nall of it").unwrap();
        assert_eq!((status, close, body.as_str()), (400, true, "all of it"));
    }

    #[test]
    fn nothing_is_no_response_and_a_short_body_is_truncated() {
        assert!(matches!(read(b""), Err(Failure::NoResponse(_))));
        let short = read(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab");
        match short {
            Err(Failure::Truncated(got, _)) => assert!(got.ends_with("ab"), "{got}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read(b"HTTP/1.1 200 OK\r\ncontent-le"),
            Err(Failure::Truncated(..))
        ));
    }

    #[test]
    fn a_parsed_response_has_lower_case_header_names_and_its_json() {
        let res = parse_response(
            b"HTTP/1.1 200 OK\r\nX-Thing:  v \r\ncontent-length: 8\r\n\r\n{\"a\": 1}",
        );
        assert_eq!(res.status, 200);
        assert_eq!(res.header("x-thing"), Some("v"));
        assert_eq!(res.headers[0].0, "x-thing");
        assert_eq!(res.json["a"], 1);
    }

    /// A server on 127.0.0.1 that answers one request per connection with
    /// `bodies[i]` and then closes it, while claiming keep-alive.
    fn closing_server(bodies: &'static [&'static str]) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for body in bodies {
                let (stream, _) = listener.accept().unwrap();
                stream.set_read_timeout(Some(IO_LIMIT)).unwrap();
                let mut stream = BufReader::new(stream);
                let mut line = String::new();
                while line != "\r\n" {
                    line.clear();
                    stream.read_line(&mut line).unwrap();
                }
                let res = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                stream.get_mut().write_all(res.as_bytes()).unwrap();
            }
        });
        addr
    }

    #[test]
    fn a_request_on_a_connection_the_server_closed_is_sent_again_on_a_new_one() {
        let addr = closing_server(&["first", "second"]);
        let mut client = Client::new(addr);
        let req = request_bytes("GET", "/", &[], b"");
        assert_eq!(client.send(&req).text, "first");
        assert_eq!(client.send(&req).text, "second");
        assert_eq!(client.connects(), 2);
    }

    #[test]
    fn try_send_reports_no_response_instead_of_retrying() {
        let addr = closing_server(&["only"]);
        let mut client = Client::new(addr);
        let req = request_bytes("GET", "/", &[], b"");
        assert!(matches!(client.try_send(&req), Outcome::Answered(r) if r.text == "only"));
        assert!(matches!(client.try_send(&req), Outcome::NoResponse));
    }

    #[test]
    fn request_bytes_frames_the_body_unless_the_headers_do() {
        let req = request_bytes("POST", "/p", &[("a", "b")], b"xyz");
        assert_eq!(
            String::from_utf8(req).unwrap(),
            "POST /p HTTP/1.1\r\nHost: 127.0.0.1\r\na: b\r\nContent-Length: 3\r\n\r\nxyz"
        );
        let req = request_bytes("POST", "/p", &[("Content-Length", "9")], b"x");
        assert_eq!(
            String::from_utf8(req).unwrap(),
            "POST /p HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 9\r\n\r\nx"
        );
    }
}
