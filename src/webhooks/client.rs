//! The deliveries' HTTP client: a POST on a kept-alive connection per receiver, and
//! nothing more.
//!
//! Why not ureq, which the server's other outgoing calls use (federation, pairing,
//! `verifyconnection`): deliveries are the busiest of them — 20,000 a second in the
//! bench's paced row, which fell behind on slow hosts — and ureq 2 spends on each more
//! than twice the CPU of the request itself. It parses the URL again at every request,
//! sets the socket's two timeouts before every read (two `setsockopt`s each), probes a
//! pooled connection's liveness (a `recv` between two `ioctl`s) and writes the head and
//! the body in two system calls. A probe of 20,000 POSTs of 700 bytes with four headers
//! to a keep-alive receiver on loopback: 21 µs of the sending thread's CPU a request with
//! ureq (with the timeout and no redirects, as deliveries used it), 8.5 µs written as
//! here; 39 against 17 µs from send to answer.
//!
//! What is done here by hand is small and bounded: the request is written as one
//! buffer; the answer's head is parsed by `httparse`; its body, read and dropped, is
//! framed by `Content-Length`, by chunks (`httparse`'s chunk-size parser) or by the end
//! of the connection, and read up to [`BODY_MAX`]; TLS is rustls with the server's client
//! configuration (`tls::client`: the system's roots and `--ca-file`). No redirect is
//! followed (a receiver could otherwise point deliveries, and their signatures,
//! anywhere), no proxy is used, no cookie kept — as the ureq agent was configured.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most of an answer's body read (and dropped) before the connection is given up
/// rather than kept: a receiver's answer is not used, only its status.
const BODY_MAX: usize = 64 * 1024;
/// The most an answer's head (status line and headers) may take.
const HEAD_MAX: usize = 64 * 1024;
/// Idle connections kept, one per receiver (scheme, host, port); a subscription has a
/// few handlers.
const IDLE_MAX: usize = 8;
/// URLs whose parts are kept parsed.
const TARGETS_MAX: usize = 16;

/// Where a URL sends to, parsed once.
struct Target {
    origin: Origin,
    /// The `Host` header: the host as the URL spells it (IPv6 in brackets), with the
    /// port unless it is the scheme's own.
    host_header: String,
    /// Path and query, as the request line carries them.
    path: String,
}

#[derive(Clone, PartialEq, Eq)]
struct Origin {
    tls: bool,
    /// The host to resolve, and the name TLS checks the certificate for.
    host: String,
    port: u16,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Io {
    fn tcp(&self) -> &TcpStream {
        match self {
            Io::Plain(s) => s,
            Io::Tls(s) => &s.sock,
        }
    }
}

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(buf),
            Io::Tls(s) => match s.read(buf) {
                // A receiver that closes without TLS's close_notify ends a body framed by
                // the end of the connection all the same (as browsers and ureq take it).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                r => r,
            },
        }
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.write(buf),
            Io::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.flush(),
            Io::Tls(s) => s.flush(),
        }
    }
}

/// One connection: the stream, what has been read of it and not used yet, and the read
/// timeout its socket has now.
struct Conn {
    io: Io,
    buf: Vec<u8>,
    /// `buf[..filled]` holds bytes read; `buf[used..filled]` are not parsed yet.
    used: usize,
    filled: usize,
    read_timeout: Duration,
}

/// Why an exchange failed, and whether the receiver said anything first: a kept
/// connection that fails before any answer was most likely closed by the receiver while
/// idle, and the request is sent again on a new one.
struct Failure {
    message: String,
    answered: bool,
}

/// A delivery worker's client: its kept connections and parsed URLs. Not shared
/// between threads (each worker has its own, as each had its own ureq agent).
pub struct Client {
    timeout: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
    targets: Vec<(String, Arc<Target>)>,
    idle: Vec<(Arc<Target>, Conn)>,
    request: Vec<u8>,
}

impl Client {
    /// A client whose every request (connection, TLS handshake, request and answer)
    /// must be done within `timeout`.
    pub fn new(timeout: Duration) -> Client {
        Client {
            timeout,
            tls: None,
            targets: Vec::new(),
            idle: Vec::new(),
            request: Vec::with_capacity(4096),
        }
    }

    /// POST `body` with `headers` (checked by the caller) to `url`; the answer's status.
    pub fn post(
        &mut self,
        url: &str,
        body: &[u8],
        headers: &[(String, String)],
    ) -> Result<u16, String> {
        let deadline = Instant::now() + self.timeout;
        let target = self.target(url)?;
        self.write_request(&target, body, headers);
        if let Some(i) = self
            .idle
            .iter()
            .position(|(t, _)| t.origin == target.origin)
        {
            let (_, conn) = self.idle.swap_remove(i);
            match exchange(conn, &self.request, deadline, self.timeout) {
                Ok((status, kept)) => return Ok(self.keep(target, status, kept)),
                Err(f) if !f.answered && Instant::now() < deadline => {}
                Err(f) => return Err(f.message),
            }
        }
        let conn = self.connect(&target.origin, deadline)?;
        match exchange(conn, &self.request, deadline, self.timeout) {
            Ok((status, kept)) => Ok(self.keep(target, status, kept)),
            Err(f) => Err(f.message),
        }
    }

    fn keep(&mut self, target: Arc<Target>, status: u16, kept: Option<Conn>) -> u16 {
        if let Some(conn) = kept {
            if self.idle.len() >= IDLE_MAX {
                self.idle.remove(0);
            }
            self.idle.push((target, conn));
        }
        status
    }

    /// `url` parsed, from the ones kept when seen before.
    fn target(&mut self, url: &str) -> Result<Arc<Target>, String> {
        if let Some((_, t)) = self.targets.iter().find(|(u, _)| u == url) {
            return Ok(t.clone());
        }
        let parsed = url::Url::parse(url).map_err(|e| format!("the URL is not valid: {e}"))?;
        let tls = match parsed.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(format!("the URL's scheme `{other}` is not http or https")),
        };
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err("the URL has no host".into()),
        };
        let host_str = parsed.host_str().unwrap_or_default();
        // `port()` is none when the URL gives none or the scheme's own.
        let host_header = match parsed.port() {
            Some(p) => format!("{host_str}:{p}"),
            None => host_str.to_string(),
        };
        let mut path = parsed.path().to_string();
        if let Some(q) = parsed.query() {
            path.push('?');
            path.push_str(q);
        }
        let target = Arc::new(Target {
            origin: Origin {
                tls,
                host,
                port: parsed.port_or_known_default().unwrap_or(80),
            },
            host_header,
            path,
        });
        if self.targets.len() >= TARGETS_MAX {
            self.targets.remove(0);
        }
        self.targets.push((url.to_string(), target.clone()));
        Ok(target)
    }

    fn write_request(&mut self, target: &Target, body: &[u8], headers: &[(String, String)]) {
        let r = &mut self.request;
        r.clear();
        r.extend_from_slice(b"POST ");
        r.extend_from_slice(target.path.as_bytes());
        r.extend_from_slice(b" HTTP/1.1\r\n");
        let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        let line = |r: &mut Vec<u8>, n: &[u8], v: &[u8]| {
            r.extend_from_slice(n);
            r.extend_from_slice(b": ");
            r.extend_from_slice(v);
            r.extend_from_slice(b"\r\n");
        };
        if !has("host") {
            line(r, b"Host", target.host_header.as_bytes());
        }
        if !has("user-agent") {
            line(
                r,
                b"User-Agent",
                concat!("gatehouse/", env!("CARGO_PKG_VERSION")).as_bytes(),
            );
        }
        if !has("accept") {
            line(r, b"Accept", b"*/*");
        }
        for (n, v) in headers {
            // The body's length is this client's to say.
            if n.eq_ignore_ascii_case("content-length")
                || n.eq_ignore_ascii_case("transfer-encoding")
            {
                continue;
            }
            line(r, n.as_bytes(), v.as_bytes());
        }
        let mut len = itoa::Buffer::new();
        line(r, b"Content-Length", len.format(body.len()).as_bytes());
        r.extend_from_slice(b"\r\n");
        r.extend_from_slice(body);
    }

    fn connect(&mut self, origin: &Origin, deadline: Instant) -> Result<Conn, String> {
        let addrs = (origin.host.as_str(), origin.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve `{}`: {e}", origin.host))?;
        let mut last: Option<io::Error> = None;
        let mut tcp = None;
        for addr in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("timed out connecting".into());
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| match last {
            Some(e) if is_timeout(&e) => "timed out connecting".to_string(),
            Some(e) => format!("cannot connect: {e}"),
            None => format!("cannot connect: `{}` resolves to no address", origin.host),
        })?;
        let setup = |tcp: &TcpStream| -> io::Result<()> {
            tcp.set_nodelay(true)?;
            tcp.set_read_timeout(Some(self.timeout))?;
            tcp.set_write_timeout(Some(self.timeout))
        };
        setup(&tcp).map_err(|e| format!("cannot set the connection up: {e}"))?;
        let io = if origin.tls {
            let name = rustls::pki_types::ServerName::try_from(origin.host.clone())
                .map_err(|e| format!("`{}` is not a name TLS can check: {e}", origin.host))?;
            let config = self.tls.get_or_insert_with(crate::tls::client).clone();
            let conn =
                rustls::ClientConnection::new(config, name).map_err(|e| format!("TLS: {e}"))?;
            Io::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
        } else {
            Io::Plain(tcp)
        };
        Ok(Conn {
            io,
            buf: vec![0; 8192],
            used: 0,
            filled: 0,
            read_timeout: self.timeout,
        })
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Conn {
    /// Read more into `buf` (growing it up to `max`); the bytes read, 0 at the end of
    /// the connection. The socket's read timeout follows the deadline, changed only when
    /// it is off by more than a tenth of the whole timeout (a system call each time).
    fn fill(&mut self, deadline: Instant, timeout: Duration, max: usize) -> io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        let slack = timeout / 10;
        if self.read_timeout > left + slack || self.read_timeout + slack < left {
            self.io.tcp().set_read_timeout(Some(left))?;
            self.read_timeout = left;
        }
        if self.used > 0 {
            self.buf.copy_within(self.used..self.filled, 0);
            self.filled -= self.used;
            self.used = 0;
        }
        if self.filled == self.buf.len() {
            if self.buf.len() >= max {
                return Err(io::Error::other("too large"));
            }
            self.buf.resize((self.buf.len() * 2).min(max), 0);
        }
        let n = self.io.read(&mut self.buf[self.filled..])?;
        self.filled += n;
        Ok(n)
    }
}

/// What frames the answer's body.
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

/// Send `request` on `conn` and read the answer: its status, and the connection if it
/// can be kept for the next request.
fn exchange(
    mut conn: Conn,
    request: &[u8],
    deadline: Instant,
    timeout: Duration,
) -> Result<(u16, Option<Conn>), Failure> {
    let fail = |answered: bool, what: &str, e: &io::Error| Failure {
        message: if is_timeout(e) {
            format!("timed out {what}")
        } else {
            format!("{what}: {e}")
        },
        answered,
    };
    conn.io
        .write_all(request)
        .and_then(|()| conn.io.flush())
        .map_err(|e| fail(false, "sending the request", &e))?;
    // The head, after any interim (1xx) answers.
    let mut answered = false;
    let (status, framing, mut keep) = loop {
        let parsed = {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut answer = httparse::Response::new(&mut headers);
            match answer.parse(&conn.buf[conn.used..conn.filled]) {
                Ok(httparse::Status::Complete(n)) => Some((n, head_of(&answer))),
                Ok(httparse::Status::Partial) => None,
                Err(e) => {
                    return Err(Failure {
                        message: format!("the answer is not HTTP: {e}"),
                        answered: true,
                    })
                }
            }
        };
        if let Some((n, (status, framing, keep))) = parsed {
            conn.used += n;
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            break (status, framing, keep);
        }
        if conn.filled - conn.used >= HEAD_MAX {
            return Err(Failure {
                message: format!("the answer's head is larger than {HEAD_MAX} bytes"),
                answered: true,
            });
        }
        match conn.fill(deadline, timeout, HEAD_MAX) {
            Ok(0) => {
                return Err(Failure {
                    message: "the receiver closed the connection without an answer".into(),
                    answered,
                })
            }
            Ok(_) => answered = true,
            Err(e) => return Err(fail(answered, "reading the answer", &e)),
        }
    };
    // The body, read and dropped; a body too large, or one that does not end where its
    // framing says, leaves the connection unfit to keep (the status stands).
    let complete = match framing {
        Framing::None => true,
        Framing::Length(n) => n <= BODY_MAX && skip(&mut conn, n, deadline, timeout),
        Framing::Chunked => chunks(&mut conn, deadline, timeout),
        Framing::UntilClose => {
            keep = false;
            let mut read = 0;
            while read <= BODY_MAX {
                conn.used = conn.filled;
                match conn.fill(deadline, timeout, 8192) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
            }
            false
        }
    };
    // Bytes after the answer were never asked for: the connection is not kept.
    let kept = (keep && complete && conn.used == conn.filled).then(|| {
        conn.used = 0;
        conn.filled = 0;
        conn
    });
    Ok((status, kept))
}

/// The status, the body's framing, and whether the connection may be kept after it.
fn head_of(answer: &httparse::Response<'_, '_>) -> (u16, Framing, bool) {
    let status = answer.code.unwrap_or(0);
    let mut length: Option<Option<usize>> = None;
    let mut chunked = false;
    let mut encoded = false;
    let mut close = answer.version == Some(0);
    for h in answer.headers.iter() {
        let value = || std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(value().parse().ok());
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            encoded = true;
            chunked = value()
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value().split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            }
        }
    }
    let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::None
    } else if encoded {
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match length {
            Some(Some(0)) => Framing::None,
            Some(Some(n)) => Framing::Length(n),
            // An unreadable length: the body ends with the connection.
            Some(None) | None => Framing::UntilClose,
        }
    };
    (status, framing, !close && status != 101)
}

/// Drop the next `n` bytes of the connection; whether they all came.
fn skip(conn: &mut Conn, mut n: usize, deadline: Instant, timeout: Duration) -> bool {
    loop {
        let have = (conn.filled - conn.used).min(n);
        conn.used += have;
        n -= have;
        if n == 0 {
            return true;
        }
        match conn.fill(deadline, timeout, BODY_MAX) {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

/// Read a chunked body through its last chunk and trailers; whether it all came within
/// [`BODY_MAX`].
fn chunks(conn: &mut Conn, deadline: Instant, timeout: Duration) -> bool {
    let mut read = 0usize;
    loop {
        match httparse::parse_chunk_size(&conn.buf[conn.used..conn.filled]) {
            Ok(httparse::Status::Complete((at, size))) => {
                conn.used += at;
                if size == 0 {
                    break;
                }
                read = read.saturating_add(size as usize);
                if read > BODY_MAX || !skip(conn, size as usize + 2, deadline, timeout) {
                    return false;
                }
            }
            Ok(httparse::Status::Partial) => match conn.fill(deadline, timeout, BODY_MAX) {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            },
            Err(_) => return false,
        }
    }
    // Trailers, a line each, up to an empty line.
    loop {
        let rest = &conn.buf[conn.used..conn.filled];
        if let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
            conn.used += end + 2;
            if end == 0 {
                return true;
            }
            continue;
        }
        match conn.fill(deadline, timeout, BODY_MAX) {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::sync::{mpsc, Mutex};

    /// What the receiver does with a request: write these bytes, then close the
    /// connection or keep it; or never answer.
    enum Answer {
        Bytes(Vec<u8>, bool),
        Hang,
    }

    trait Duplex: Read + Write + Send {}
    impl<T: Read + Write + Send> Duplex for T {}

    fn ok(text: &str) -> Answer {
        Answer::Bytes(text.as_bytes().to_vec(), false)
    }

    /// A receiver on loopback that answers requests in turn with `answers`; each request
    /// it read is reported as (the number of its connection, its head and body).
    fn receiver(answers: Vec<Answer>) -> (String, mpsc::Receiver<(usize, String)>) {
        let (port, seen) = receiver_on(answers, |s| Box::new(s));
        (format!("http://127.0.0.1:{port}"), seen)
    }

    /// The same on the streams `wrap` makes of its connections (TLS); its port.
    fn receiver_on(
        answers: Vec<Answer>,
        wrap: impl Fn(TcpStream) -> Box<dyn Duplex> + Send + Sync + 'static,
    ) -> (u16, mpsc::Receiver<(usize, String)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let wrap = Arc::new(wrap);
        let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                let (answers, tx, wrap) = (answers.clone(), tx.clone(), wrap.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(wrap(stream));
                    loop {
                        let mut request = String::new();
                        let mut length = 0;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if let Some(v) =
                                line.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().unwrap();
                            }
                            request.push_str(&line);
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        request.push_str(&String::from_utf8(body).unwrap());
                        tx.send((n, request)).unwrap();
                        let next = answers.lock().unwrap().pop_front();
                        match next {
                            Some(Answer::Bytes(bytes, close)) => {
                                let out = reader.get_mut();
                                out.write_all(&bytes).unwrap();
                                out.flush().unwrap();
                                if close {
                                    return;
                                }
                            }
                            Some(Answer::Hang) => std::thread::sleep(Duration::from_secs(30)),
                            None => return,
                        }
                    }
                });
            }
        });
        (port, rx)
    }

    fn headers() -> Vec<(String, String)> {
        vec![
            ("Content-Type".into(), "application/json".into()),
            ("X-A".into(), "b".into()),
            // The client says the length itself.
            ("content-length".into(), "999".into()),
        ]
    }

    fn post(client: &mut Client, base: &str) -> Result<u16, String> {
        client.post(&format!("{base}/hook?x=1"), b"{\"a\":1}", &headers())
    }

    #[test]
    fn a_request_is_written_whole_and_the_connection_kept() {
        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (base, seen) = receiver(vec![ok(answer), ok(answer), ok(answer)]);
        let mut client = Client::new(Duration::from_secs(5));
        for _ in 0..3 {
            assert_eq!(post(&mut client, &base), Ok(200));
        }
        let host = base.strip_prefix("http://").unwrap();
        for _ in 0..3 {
            let (conn, request) = seen.recv().unwrap();
            assert_eq!(conn, 0, "one connection for all three");
            assert!(
                request.starts_with("POST /hook?x=1 HTTP/1.1\r\n"),
                "{request}"
            );
            assert!(
                request.contains(&format!("\r\nHost: {host}\r\n")),
                "{request}"
            );
            assert!(request.contains("\r\nX-A: b\r\n"), "{request}");
            assert!(
                request.contains("\r\nContent-Type: application/json\r\n"),
                "{request}"
            );
            assert_eq!(
                request
                    .to_ascii_lowercase()
                    .matches("content-length")
                    .count(),
                1
            );
            assert!(
                request.ends_with("\r\nContent-Length: 7\r\n\r\n{\"a\":1}"),
                "{request}"
            );
        }
    }

    #[test]
    fn chunked_and_interim_answers_are_read_through() {
        let chunked =
            "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\nX-T: 1\r\n\r\n";
        let interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        let (base, seen) = receiver(vec![ok(chunked), ok(interim), ok(chunked)]);
        let mut client = Client::new(Duration::from_secs(5));
        assert_eq!(post(&mut client, &base), Ok(201));
        assert_eq!(post(&mut client, &base), Ok(204));
        assert_eq!(post(&mut client, &base), Ok(201));
        let conns: Vec<usize> = (0..3).map(|_| seen.recv().unwrap().0).collect();
        assert_eq!(conns, [0, 0, 0]);
    }

    #[test]
    fn a_connection_that_cannot_be_kept_is_not() {
        let (base, seen) = receiver(vec![
            // Said to close.
            Answer::Bytes(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".to_vec(),
                true,
            ),
            // A body that ends with the connection.
            Answer::Bytes(b"HTTP/1.1 202 Accepted\r\n\r\nsome text".to_vec(), true),
            // HTTP/1.0 without keep-alive.
            ok("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
            // A body larger than is read.
            ok(&format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
                BODY_MAX + 1,
                "x".repeat(BODY_MAX + 1)
            )),
            ok("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ]);
        let mut client = Client::new(Duration::from_secs(5));
        for want in [200, 202, 200, 200, 200] {
            assert_eq!(post(&mut client, &base), Ok(want));
        }
        let conns: Vec<usize> = (0..5).map(|_| seen.recv().unwrap().0).collect();
        assert_eq!(conns, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_kept_connection_the_receiver_closed_is_replaced_and_the_request_sent_once() {
        // Keep-alive said, then the connection closed (as a receiver's idle timeout does).
        let (base, seen) = receiver(vec![
            Answer::Bytes(
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
                true,
            ),
            ok("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ]);
        let mut client = Client::new(Duration::from_secs(5));
        assert_eq!(post(&mut client, &base), Ok(200));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(post(&mut client, &base), Ok(200));
        assert_eq!(seen.recv().unwrap().0, 0);
        assert_eq!(seen.recv().unwrap().0, 1);
        assert!(
            seen.recv_timeout(Duration::from_millis(300)).is_err(),
            "sent twice"
        );
    }

    #[test]
    fn https_is_verified_and_its_connection_kept() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let server = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap(),
        );
        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (port, seen) = receiver_on(vec![ok(answer), ok(answer)], move |tcp| {
            let conn = rustls::ServerConnection::new(server.clone()).unwrap();
            Box::new(rustls::StreamOwned::new(conn, tcp))
        });
        let url = format!("https://localhost:{port}/hook");
        // Trusting the receiver's certificate: two requests on one connection.
        let trusted = crate::tls::client_with_roots(&cert.pem()).unwrap();
        let mut client = Client::new(Duration::from_secs(5));
        client.tls = Some(trusted);
        for _ in 0..2 {
            assert_eq!(client.post(&url, b"{}", &headers()), Ok(200));
        }
        let (c1, request) = seen.recv().unwrap();
        assert!(
            request.contains(&format!("\r\nHost: localhost:{port}\r\n")),
            "{request}"
        );
        assert_eq!((c1, seen.recv().unwrap().0), (0, 0));
        // Trusting another: refused, saying why, and nothing sent.
        let other = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let mut client = Client::new(Duration::from_secs(5));
        client.tls = Some(crate::tls::client_with_roots(&other.pem()).unwrap());
        let e = client.post(&url, b"{}", &headers()).unwrap_err();
        assert!(e.contains("certificate"), "{e}");
        assert!(seen.recv_timeout(Duration::from_millis(300)).is_err());
    }

    #[test]
    fn failures_say_what_failed() {
        // No answer within the timeout.
        let (base, _seen) = receiver(vec![Answer::Hang]);
        let mut client = Client::new(Duration::from_millis(300));
        let started = Instant::now();
        let e = post(&mut client, &base).unwrap_err();
        assert!(e.contains("timed out"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
        // Not HTTP.
        let (base, _seen) = receiver(vec![ok("SSH-2.0-OpenSSH\r\n\r\n")]);
        let e = post(&mut Client::new(Duration::from_secs(5)), &base).unwrap_err();
        assert!(e.contains("not HTTP"), "{e}");
        // Nobody listening.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = post(
            &mut Client::new(Duration::from_secs(5)),
            &format!("http://127.0.0.1:{port}"),
        )
        .unwrap_err();
        assert!(e.starts_with("cannot connect"), "{e}");
        // Closed without a word, on a new connection: not sent again.
        let (base, seen) = receiver(vec![]);
        let e = post(&mut Client::new(Duration::from_secs(5)), &base).unwrap_err();
        assert!(e.contains("without an answer"), "{e}");
        assert_eq!(seen.recv().unwrap().0, 0);
        assert!(seen.recv_timeout(Duration::from_millis(300)).is_err());
        // A scheme other than HTTP's.
        let e = Client::new(Duration::from_secs(1))
            .post("ftp://x.test/", b"", &[])
            .unwrap_err();
        assert!(e.contains("`ftp`"), "{e}");
    }
}
