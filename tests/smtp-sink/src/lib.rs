//! An SMTP server for tests.
//!
//! Kontor sends e-mail over SMTP (the installer's test message, module
//! notifications, license reminders). Tests of that code talk to this
//! server through a real SMTP conversation on `127.0.0.1` — greeting,
//! `EHLO`, optional `AUTH`, `MAIL FROM`, `RCPT TO`, `DATA`, `QUIT` — so they
//! prove what a real relay would receive, not what a mock client was told.
//!
//! ```no_run
//! let sink = kontor_smtp_sink::SmtpSink::start().unwrap();
//! // point the code under test at 127.0.0.1:{sink.port()} without TLS ...
//! let messages = sink.wait_for(1, std::time::Duration::from_secs(10));
//! assert_eq!(messages[0].subject().as_deref(), Some("Hello"));
//! ```
//!
//! It runs on plain threads, so synchronous and async tests can both use it.
//! There is no TLS: `STARTTLS` is refused, as a relay without it would.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;

/// One message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The name the client gave in `EHLO`/`HELO`.
    pub helo: String,
    /// The user of a successful `AUTH`, if the client authenticated.
    pub auth_user: Option<String>,
    /// The password the client authenticated with, so a test can check the
    /// configured credentials were used.
    pub auth_password: Option<String>,
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The message as sent (headers and body, dot-unstuffed, CRLF line ends).
    pub data: String,
}

impl Received {
    /// The value of the first header `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        header_in(head_of(&self.data), name)
    }

    /// The `Subject` header.
    pub fn subject(&self) -> Option<String> {
        self.header("Subject")
    }

    /// The readable text of the message: the body of a single-part message,
    /// or its `text/plain` part, with quoted-printable or base64 transfer
    /// encoding undone.
    pub fn text(&self) -> String {
        let (head, body) = split_message(&self.data);
        let content_type = header_in(head, "Content-Type").unwrap_or_default();
        if let Some(boundary) = boundary_of(&content_type) {
            let parts = parts_of(body, &boundary);
            let plain = parts
                .iter()
                .find(|part| {
                    header_in(split_message(part).0, "Content-Type")
                        .is_some_and(|t| t.to_ascii_lowercase().starts_with("text/plain"))
                })
                .or(parts.first());
            return plain.map(|part| decoded_body(part)).unwrap_or_default();
        }
        decoded_body(&self.data)
    }

    /// The `text/html` part of a multipart message, decoded, if there is one.
    pub fn html(&self) -> Option<String> {
        let (head, body) = split_message(&self.data);
        let boundary = boundary_of(&header_in(head, "Content-Type")?)?;
        parts_of(body, &boundary)
            .iter()
            .find(|part| {
                header_in(split_message(part).0, "Content-Type")
                    .is_some_and(|t| t.to_ascii_lowercase().starts_with("text/html"))
            })
            .map(|part| decoded_body(part))
    }
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<Received>>,
    arrived: Condvar,
    /// How many of the next messages to refuse with a temporary error.
    fail_next: AtomicUsize,
    stop: AtomicBool,
}

/// A running SMTP sink; it stops when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl SmtpSink {
    /// Start listening on a free port of `127.0.0.1`.
    pub fn start() -> std::io::Result<SmtpSink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept_shared = shared.clone();
        std::thread::Builder::new()
            .name("smtp-sink".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = accept_shared.clone();
                    std::thread::spawn(move || {
                        // A client that hangs up mid-conversation is its business.
                        let _ = serve(stream, &shared);
                    });
                }
            })?;
        Ok(SmtpSink { addr, shared })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<Received> {
        self.shared.messages.lock().unwrap().clone()
    }

    /// Wait until at least `count` messages arrived or `timeout` passed;
    /// returns the messages there are by then.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        let mut messages = self.shared.messages.lock().unwrap();
        while messages.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            messages = self.shared.arrived.wait_timeout(messages, left).unwrap().0;
        }
        messages.clone()
    }

    /// Refuse the next `count` messages at the end of `DATA` with a
    /// temporary error (`451`), as a relay under load does: for retry tests.
    pub fn fail_next(&self, count: usize) {
        self.shared.fail_next.store(count, Ordering::SeqCst);
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so its thread ends.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Longest message the sink takes, as advertised in `EHLO`.
const MAX_SIZE: usize = 10 * 1024 * 1024;

fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = stream.try_clone()?;
    let mut lines = BufReader::new(stream);
    let mut reply = |text: &str| out.write_all(format!("{text}\r\n").as_bytes());
    reply("220 kontor-smtp-sink ESMTP ready")?;

    let mut helo = String::new();
    let mut auth: Option<(String, String)> = None;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end_matches(['\r', '\n']);
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let argument = command.get(verb.len()..).unwrap_or_default().trim();
        match verb.as_str() {
            "EHLO" => {
                helo = argument.to_string();
                reply("250-kontor-smtp-sink")?;
                reply(&format!("250-SIZE {MAX_SIZE}"))?;
                reply("250-8BITMIME")?;
                reply("250-AUTH PLAIN LOGIN")?;
                reply("250 SMTPUTF8")?;
            }
            "HELO" => {
                helo = argument.to_string();
                reply("250 kontor-smtp-sink")?;
            }
            "AUTH" => {
                let mut words = argument.split_whitespace();
                let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
                let initial = words.next().map(str::to_string);
                let credentials = match mechanism.as_str() {
                    "PLAIN" => {
                        let response = match initial {
                            Some(r) => r,
                            None => {
                                reply("334 ")?;
                                read_trimmed(&mut lines)?
                            }
                        };
                        decode(&response).and_then(|plain| {
                            let mut fields = plain.split('\0').skip(1);
                            Some((fields.next()?.to_string(), fields.next()?.to_string()))
                        })
                    }
                    "LOGIN" => {
                        let user = match initial {
                            Some(u) => u,
                            None => {
                                reply("334 VXNlcm5hbWU6")?;
                                read_trimmed(&mut lines)?
                            }
                        };
                        reply("334 UGFzc3dvcmQ6")?;
                        let password = read_trimmed(&mut lines)?;
                        decode(&user).zip(decode(&password))
                    }
                    _ => None,
                };
                match credentials {
                    Some(c) => {
                        auth = Some(c);
                        reply("235 2.7.0 authenticated")?;
                    }
                    None => reply("535 5.7.8 authentication failed")?,
                }
            }
            "MAIL" => {
                from = Some(path_of(argument));
                to.clear();
                reply("250 2.1.0 sender ok")?;
            }
            "RCPT" => {
                if from.is_none() {
                    reply("503 5.5.1 MAIL first")?;
                } else {
                    to.push(path_of(argument));
                    reply("250 2.1.5 recipient ok")?;
                }
            }
            "DATA" => {
                if from.is_none() || to.is_empty() {
                    reply("503 5.5.1 MAIL and RCPT first")?;
                    continue;
                }
                reply("354 end data with <CR><LF>.<CR><LF>")?;
                let data = read_data(&mut lines)?;
                let refuse = shared
                    .fail_next
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if refuse {
                    reply("451 4.3.0 temporarily refused by the test")?;
                } else {
                    let message = Received {
                        helo: helo.clone(),
                        auth_user: auth.as_ref().map(|a| a.0.clone()),
                        auth_password: auth.as_ref().map(|a| a.1.clone()),
                        from: from.clone().unwrap_or_default(),
                        to: std::mem::take(&mut to),
                        data,
                    };
                    let mut messages = shared.messages.lock().unwrap();
                    messages.push(message);
                    let n = messages.len();
                    drop(messages);
                    shared.arrived.notify_all();
                    reply(&format!("250 2.0.0 queued as {n}"))?;
                }
                from = None;
                to.clear();
            }
            "RSET" => {
                from = None;
                to.clear();
                reply("250 2.0.0 reset")?;
            }
            "NOOP" => reply("250 2.0.0 ok")?,
            "QUIT" => {
                reply("221 2.0.0 bye")?;
                return Ok(());
            }
            "STARTTLS" => reply("502 5.5.1 TLS is not offered here")?,
            _ => reply("500 5.5.2 unknown command")?,
        }
    }
}

fn read_trimmed(lines: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    lines.read_line(&mut line)?;
    Ok(line.trim().to_string())
}

/// The message after `DATA` up to the lone dot, with dot-stuffing undone.
fn read_data(lines: &mut impl BufRead) -> std::io::Result<String> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let content = line.trim_end_matches(['\r', '\n']);
        if content == "." {
            return Ok(data);
        }
        data.push_str(content.strip_prefix('.').unwrap_or(content));
        data.push_str("\r\n");
    }
}

/// `a@b` out of `FROM:<a@b> SIZE=12` (or of `TO:a@b`).
fn path_of(argument: &str) -> String {
    let after_colon = argument.split_once(':').map_or(argument, |(_, rest)| rest);
    let path = after_colon.split_whitespace().next().unwrap_or_default();
    path.trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

fn decode(text: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The header block and the body of a message or MIME part.
fn split_message(message: &str) -> (&str, &str) {
    message.split_once("\r\n\r\n").unwrap_or((message, ""))
}

fn head_of(message: &str) -> &str {
    split_message(message).0
}

fn header_in(head: &str, name: &str) -> Option<String> {
    let mut value: Option<String> = None;
    for line in head.split("\r\n") {
        if let Some(current) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                current.push(' ');
                current.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((key, rest)) = line.split_once(':') {
            if key.eq_ignore_ascii_case(name) {
                value = Some(rest.trim().to_string());
            }
        }
    }
    value
}

fn boundary_of(content_type: &str) -> Option<String> {
    if !content_type.to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    let at = content_type.to_ascii_lowercase().find("boundary=")? + "boundary=".len();
    let rest = &content_type[at..];
    let boundary = rest.split(';').next()?.trim().trim_matches('"');
    Some(boundary.to_string())
}

/// The parts between `--boundary` lines (nested multiparts flattened).
fn parts_of(body: &str, boundary: &str) -> Vec<String> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    for chunk in body.split(&delimiter).skip(1) {
        if chunk.starts_with("--") {
            break;
        }
        let part = chunk.trim_start_matches("\r\n").to_string();
        let content_type = header_in(head_of(&part), "Content-Type").unwrap_or_default();
        match boundary_of(&content_type) {
            Some(inner) => parts.extend(parts_of(split_message(&part).1, &inner)),
            None => parts.push(part),
        }
    }
    parts
}

/// The body of a single part with its transfer encoding undone.
fn decoded_body(part: &str) -> String {
    let (head, body) = split_message(part);
    let encoding = header_in(head, "Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let text = match encoding.as_str() {
        "base64" => {
            let compact: String = body.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .unwrap_or_default()
        }
        "quoted-printable" => quoted_printable(body),
        _ => body.to_string(),
    };
    text.trim_end_matches("\r\n").replace("\r\n", "\n")
}

fn quoted_printable(body: &str) -> String {
    let mut bytes = Vec::with_capacity(body.len());
    let raw = body.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'=' if raw.get(i + 1..i + 3) == Some(b"\r\n") => i += 3,
            b'=' if raw.get(i + 1) == Some(&b'\n') => i += 2,
            b'=' if i + 2 < raw.len() => {
                let hex = std::str::from_utf8(&raw[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => bytes.push(b),
                    Err(_) => bytes.extend_from_slice(&raw[i..i + 3]),
                }
                i += 3;
            }
            b => {
                bytes.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn talk(sink: &SmtpSink, script: &[&str]) -> Vec<String> {
        let stream = TcpStream::connect(sink.addr()).unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut lines = BufReader::new(stream);
        let mut replies = Vec::new();
        let read_reply = |lines: &mut BufReader<TcpStream>| {
            let mut all = String::new();
            loop {
                let mut line = String::new();
                lines.read_line(&mut line).unwrap();
                all.push_str(&line);
                if line.as_bytes().get(3) != Some(&b'-') {
                    return all;
                }
            }
        };
        replies.push(read_reply(&mut lines));
        for command in script {
            out.write_all(format!("{command}\r\n").as_bytes()).unwrap();
            // Lines inside DATA get no reply of their own.
            let in_data = replies.last().is_some_and(|r| r.starts_with("354")) && *command != ".";
            if !in_data {
                replies.push(read_reply(&mut lines));
            }
        }
        replies
    }

    #[test]
    fn a_conversation_is_recorded_with_envelope_auth_and_unstuffed_data() {
        let sink = SmtpSink::start().unwrap();
        let plain = base64::engine::general_purpose::STANDARD.encode("\0mailer\0s3cret");
        let replies = talk(
            &sink,
            &[
                "EHLO client.test",
                &format!("AUTH PLAIN {plain}"),
                "MAIL FROM:<billing@kontor.test> SIZE=100",
                "RCPT TO:<ada@example.com>",
                "DATA",
                "Subject: Hello",
                "",
                "..leading dot",
                ".",
                "QUIT",
            ],
        );
        assert!(replies[0].starts_with("220"));
        assert!(replies.iter().any(|r| r.starts_with("235")), "{replies:?}");
        let messages = sink.wait_for(1, Duration::from_secs(5));
        assert_eq!(messages.len(), 1);
        let m = &messages[0];
        assert_eq!(m.helo, "client.test");
        assert_eq!(m.auth_user.as_deref(), Some("mailer"));
        assert_eq!(m.auth_password.as_deref(), Some("s3cret"));
        assert_eq!(m.from, "billing@kontor.test");
        assert_eq!(m.to, vec!["ada@example.com".to_string()]);
        assert_eq!(m.subject().as_deref(), Some("Hello"));
        assert_eq!(m.text(), ".leading dot");
    }

    #[test]
    fn fail_next_refuses_with_a_temporary_error_then_accepts() {
        let sink = SmtpSink::start().unwrap();
        sink.fail_next(1);
        let script = [
            "HELO c",
            "MAIL FROM:<a@b.test>",
            "RCPT TO:<c@d.test>",
            "DATA",
            "Subject: x",
            "",
            "body",
            ".",
        ];
        let first = talk(&sink, &script);
        assert!(first.last().unwrap().starts_with("451"), "{first:?}");
        let second = talk(&sink, &script);
        assert!(second.last().unwrap().starts_with("250"), "{second:?}");
        assert_eq!(sink.messages().len(), 1);
    }

    #[test]
    fn multipart_text_and_html_parts_are_decoded() {
        let data = "Subject: =?utf-8?q?x?=\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BCezi =\r\nAda\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nPHA+R3LDvGV6aTwvcD4=\r\n--b1--\r\n";
        let m = Received {
            helo: String::new(),
            auth_user: None,
            auth_password: None,
            from: String::new(),
            to: vec![],
            data: data.into(),
        };
        assert_eq!(m.text(), "Grüezi Ada");
        assert_eq!(m.html().as_deref(), Some("<p>Grüezi</p>"));
    }
}
