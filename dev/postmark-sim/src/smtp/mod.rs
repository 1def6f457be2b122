//! SMTP submission like Postmark's: STARTTLS, AUTH PLAIN and LOGIN with a Server API Token as user
//! name and password, then messages that go through the same pipeline as the API. Replies follow
//! RFC 5321 (with enhanced status codes, RFC 3463) and RFC 4954.

mod mime;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::address;
use crate::faults::{AfterAccept, Outcome};
use crate::pipeline::{Incoming, MAX_MESSAGE_BYTES, MAX_RECIPIENTS};
use crate::state::{Server, Sim, Via, lock};

const MAX_COMMAND_LINE: usize = 4096;
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) async fn serve(listener: TcpListener, sim: Arc<Sim>, tls: TlsAcceptor) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "SMTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let sim = sim.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            if let Err(error) = connection(stream, sim, tls).await {
                tracing::debug!(%error, "SMTP connection ended with an error");
            }
        });
    }
}

async fn connection(stream: TcpStream, sim: Arc<Sim>, tls: TlsAcceptor) -> std::io::Result<()> {
    lock(&sim.counters).smtp_connections += 1;
    let _ = stream.set_nodelay(true);
    let mut plain = BufReader::new(stream);
    let greeting = format!(
        "220 {} ESMTP Postmark simulator ready\r\n",
        sim.options.hostname
    );
    plain.get_mut().write_all(greeting.as_bytes()).await?;
    if session(&mut plain, &sim, false).await? == Next::StartTls {
        // Whatever the client sent after STARTTLS is dropped with the buffer, as RFC 3207 requires.
        let stream = plain.into_inner();
        let secured = tls.accept(stream).await?;
        let mut secured = BufReader::new(secured);
        session(&mut secured, &sim, true).await?;
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Next {
    Close,
    StartTls,
}

/// The state of one SMTP session (reset by a new EHLO, after STARTTLS and, for the mail
/// transaction, by RSET and after DATA).
#[derive(Default)]
struct Session {
    greeted: bool,
    server: Option<Arc<Server>>,
    mail_from: Option<String>,
    recipients: Vec<String>,
}

impl Session {
    fn reset_transaction(&mut self) {
        self.mail_from = None;
        self.recipients.clear();
    }
}

enum Line {
    Text(Vec<u8>),
    TooLong,
    Eof,
}

/// Reads one line (with its ending) of at most `limit` bytes; a longer one is read to its end and
/// reported as too long.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R, limit: usize) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if line.is_empty() && !too_long {
                Line::Eof
            } else {
                Line::Text(line)
            });
        }
        let (chunk, done) = match available.iter().position(|byte| *byte == b'\n') {
            Some(end) => (&available[..=end], true),
            None => (available, false),
        };
        let used = chunk.len();
        if !too_long {
            line.extend_from_slice(chunk);
            if line.len() > limit {
                too_long = true;
                line.clear();
            }
        }
        reader.consume(used);
        if done {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Text(line)
            });
        }
    }
}

async fn reply<S: AsyncWrite + Unpin>(stream: &mut S, text: &str) -> std::io::Result<()> {
    stream.write_all(text.as_bytes()).await?;
    stream.write_all(b"\r\n").await?;
    stream.flush().await
}

async fn session<S>(conn: &mut BufReader<S>, sim: &Arc<Sim>, secure: bool) -> std::io::Result<Next>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut state = Session::default();
    let require_tls = sim.options.smtp_require_tls;
    loop {
        let line = match tokio::time::timeout(IDLE_TIMEOUT, read_line(conn, MAX_COMMAND_LINE)).await
        {
            Ok(line) => line?,
            Err(_) => {
                reply(
                    conn.get_mut(),
                    "421 4.4.2 Idle for too long, closing connection",
                )
                .await?;
                return Ok(Next::Close);
            }
        };
        let line = match line {
            Line::Eof => return Ok(Next::Close),
            Line::TooLong => {
                reply(conn.get_mut(), "500 5.5.6 Line too long").await?;
                continue;
            }
            Line::Text(bytes) => String::from_utf8_lossy(&bytes).trim_end().to_owned(),
        };
        let (verb, argument) = match line.split_once(' ') {
            Some((verb, argument)) => (verb.to_ascii_uppercase(), argument.trim().to_owned()),
            None => (line.to_ascii_uppercase(), String::new()),
        };
        let out = conn.get_mut();
        match verb.as_str() {
            "EHLO" | "HELO" if argument.is_empty() => {
                reply(out, "501 5.5.4 A domain or address is required").await?;
            }
            "EHLO" => {
                state = Session {
                    greeted: true,
                    server: state.server.take(),
                    ..Session::default()
                };
                let mut lines = vec![
                    format!("{} greets {argument}", sim.options.hostname),
                    format!("SIZE {MAX_MESSAGE_BYTES}"),
                    "8BITMIME".to_owned(),
                ];
                if !secure {
                    lines.push("STARTTLS".to_owned());
                }
                if secure || !require_tls {
                    lines.push("AUTH PLAIN LOGIN".to_owned());
                }
                lines.push("ENHANCEDSTATUSCODES".to_owned());
                let last = lines.len() - 1;
                let text: Vec<String> = lines
                    .iter()
                    .enumerate()
                    .map(|(index, line)| {
                        format!("250{}{line}", if index == last { ' ' } else { '-' })
                    })
                    .collect();
                reply(out, &text.join("\r\n")).await?;
            }
            "HELO" => {
                state.greeted = true;
                state.reset_transaction();
                reply(out, &format!("250 {}", sim.options.hostname)).await?;
            }
            "STARTTLS" if secure => reply(out, "503 5.5.1 TLS is already active").await?,
            "STARTTLS" if !argument.is_empty() => {
                reply(out, "501 5.5.4 STARTTLS takes no argument").await?
            }
            "STARTTLS" => {
                reply(out, "220 2.0.0 Ready to start TLS").await?;
                return Ok(Next::StartTls);
            }
            "AUTH" => authenticate(conn, sim, &mut state, &argument, secure).await?,
            "MAIL" => {
                let answer = if !state.greeted {
                    "503 5.5.1 Send EHLO first"
                } else if require_tls && !secure {
                    "530 5.7.0 Must issue a STARTTLS command first"
                } else if state.server.is_none() {
                    "530 5.7.0 Authentication required"
                } else if state.mail_from.is_some() {
                    "503 5.5.1 Sender already given"
                } else {
                    match path(&argument, "FROM:") {
                        None => "501 5.5.4 Syntax: MAIL FROM:<address>",
                        Some((_, parameters)) if too_big(&parameters) => {
                            "552 5.3.4 Message size exceeds fixed maximum message size"
                        }
                        Some((sender, _)) => {
                            state.mail_from = Some(sender);
                            "250 2.1.0 Sender OK"
                        }
                    }
                };
                reply(out, answer).await?;
            }
            "RCPT" => {
                let answer = if state.mail_from.is_none() {
                    "503 5.5.1 Need MAIL command first"
                } else {
                    match path(&argument, "TO:") {
                        None => "501 5.5.4 Syntax: RCPT TO:<address>",
                        Some((recipient, _)) if address::parse_mailbox(&recipient).is_none() => {
                            "501 5.1.3 Bad recipient address syntax"
                        }
                        Some(_) if state.recipients.len() >= MAX_RECIPIENTS => {
                            "452 4.5.3 Too many recipients"
                        }
                        Some((recipient, _)) => {
                            state.recipients.push(recipient);
                            "250 2.1.5 Recipient OK"
                        }
                    }
                };
                reply(out, answer).await?;
            }
            "DATA" if state.mail_from.is_none() => {
                reply(out, "503 5.5.1 Need MAIL command first").await?
            }
            "DATA" if state.recipients.is_empty() => {
                reply(out, "554 5.5.1 No valid recipients").await?
            }
            "DATA" => {
                reply(out, "354 Start mail input; end with <CRLF>.<CRLF>").await?;
                let Some(message) = read_data(conn).await? else {
                    return Ok(Next::Close);
                };
                match deliver(sim, &state, message).await {
                    Answer::Reply(answer) => reply(conn.get_mut(), &answer).await?,
                    Answer::Close => return Ok(Next::Close),
                    Answer::CloseAfter(hold) => {
                        tokio::time::sleep(hold).await;
                        return Ok(Next::Close);
                    }
                }
                state.reset_transaction();
            }
            "RSET" => {
                state.reset_transaction();
                reply(out, "250 2.0.0 OK").await?;
            }
            "NOOP" => reply(out, "250 2.0.0 OK").await?,
            "VRFY" => reply(out, "252 2.5.0 Cannot VRFY user, but will accept message").await?,
            "HELP" => {
                reply(
                    out,
                    "214 2.0.0 EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP QUIT",
                )
                .await?
            }
            "QUIT" => {
                reply(out, "221 2.0.0 Bye").await?;
                return Ok(Next::Close);
            }
            _ => reply(out, "500 5.5.2 Command not recognized").await?,
        }
    }
}

/// `FROM:<address> PARAM=...` into the address and the parameters.
fn path(argument: &str, prefix: &str) -> Option<(String, String)> {
    let head = argument.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = argument[prefix.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some((
        rest[..end].trim().to_owned(),
        rest[end + 1..].trim().to_owned(),
    ))
}

fn too_big(parameters: &str) -> bool {
    parameters.split_whitespace().any(|parameter| {
        parameter
            .split_once('=')
            .filter(|(key, _)| key.eq_ignore_ascii_case("SIZE"))
            .and_then(|(_, value)| value.parse::<usize>().ok())
            .is_some_and(|size| size > MAX_MESSAGE_BYTES)
    })
}

async fn authenticate<S>(
    conn: &mut BufReader<S>,
    sim: &Arc<Sim>,
    state: &mut Session,
    argument: &str,
    secure: bool,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let refusal = if !state.greeted {
        Some("503 5.5.1 Send EHLO first")
    } else if state.server.is_some() {
        Some("503 5.5.1 Already authenticated")
    } else if state.mail_from.is_some() {
        Some("503 5.5.1 AUTH is not allowed during a mail transaction")
    } else if sim.options.smtp_require_tls && !secure {
        Some("530 5.7.0 Must issue a STARTTLS command first")
    } else {
        None
    };
    if let Some(refusal) = refusal {
        return reply(conn.get_mut(), refusal).await;
    }
    let (mechanism, initial) = match argument.split_once(' ') {
        Some((mechanism, initial)) => (
            mechanism.to_ascii_uppercase(),
            Some(initial.trim().to_owned()),
        ),
        None => (argument.to_ascii_uppercase(), None),
    };
    let credentials = match mechanism.as_str() {
        "PLAIN" => {
            let response = match initial {
                Some(initial) => Some(initial),
                None => challenge(conn, "334 ").await?,
            };
            let Some(response) = response else {
                return reply(conn.get_mut(), "501 5.0.0 Authentication cancelled").await;
            };
            decode(&response).and_then(|bytes| {
                let mut fields = bytes.split(|byte| *byte == 0);
                let _authorization = fields.next()?;
                let user = String::from_utf8(fields.next()?.to_vec()).ok()?;
                let password = String::from_utf8(fields.next()?.to_vec()).ok()?;
                Some((user, password))
            })
        }
        "LOGIN" => {
            let user = match initial {
                Some(initial) => Some(initial),
                None => challenge(conn, "334 VXNlcm5hbWU6").await?,
            };
            let Some(user) = user else {
                return reply(conn.get_mut(), "501 5.0.0 Authentication cancelled").await;
            };
            let Some(password) = challenge(conn, "334 UGFzc3dvcmQ6").await? else {
                return reply(conn.get_mut(), "501 5.0.0 Authentication cancelled").await;
            };
            decode(&user)
                .zip(decode(&password))
                .and_then(|(user, password)| {
                    Some((
                        String::from_utf8(user).ok()?,
                        String::from_utf8(password).ok()?,
                    ))
                })
        }
        _ => return reply(conn.get_mut(), "504 5.5.4 Unrecognized authentication type").await,
    };
    let Some((user, password)) = credentials else {
        return reply(conn.get_mut(), "501 5.5.2 Cannot decode the credentials").await;
    };
    // Postmark's server-token login: the same Server API Token as user name and password.
    let server = sim
        .registry()
        .by_token(&user)
        .filter(|server| server.config.smtp_api_activated)
        .filter(|_| password.trim().eq_ignore_ascii_case(user.trim()))
        .cloned();
    match server {
        Some(server) => {
            state.server = Some(server);
            reply(conn.get_mut(), "235 2.7.0 Authentication successful").await
        }
        None => {
            reply(
                conn.get_mut(),
                "535 5.7.8 Authentication credentials invalid",
            )
            .await
        }
    }
}

/// Sends a 334 challenge and reads the answer; `None` when the client cancels with `*`.
async fn challenge<S>(conn: &mut BufReader<S>, prompt: &str) -> std::io::Result<Option<String>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    reply(conn.get_mut(), prompt).await?;
    match read_line(conn, MAX_COMMAND_LINE).await? {
        Line::Text(bytes) => {
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            Ok((text != "*").then_some(text))
        }
        Line::TooLong | Line::Eof => Ok(None),
    }
}

fn decode(text: &str) -> Option<Vec<u8>> {
    BASE64.decode(text.trim()).ok()
}

enum Data {
    Message(Vec<u8>),
    TooLarge,
}

/// Reads DATA up to the lone dot, undoing dot-stuffing; `None` when the connection ends first.
async fn read_data<S>(conn: &mut BufReader<S>) -> std::io::Result<Option<Data>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut message = Vec::new();
    let mut too_large = false;
    loop {
        let line = match read_line(conn, MAX_MESSAGE_BYTES).await? {
            Line::Eof => return Ok(None),
            Line::TooLong => {
                too_large = true;
                continue;
            }
            Line::Text(line) => line,
        };
        if line == b".\r\n" || line == b".\n" {
            return Ok(Some(if too_large {
                Data::TooLarge
            } else {
                Data::Message(message)
            }));
        }
        let content = line.strip_prefix(b".").unwrap_or(&line);
        if message.len() + content.len() > MAX_MESSAGE_BYTES {
            too_large = true;
            message.clear();
        }
        if !too_large {
            message.extend_from_slice(content);
        }
    }
}

/// What to do after a complete DATA.
enum Answer {
    /// Send this reply.
    Reply(String),
    /// Close the connection without a reply (the "drop" faults).
    Close,
    /// Wait, then close without a reply (the "accept_then_timeout" fault).
    CloseAfter(std::time::Duration),
}

/// The answer to a complete DATA.
async fn deliver(sim: &Arc<Sim>, state: &Session, data: Data) -> Answer {
    sim.count_request("SMTP DATA");
    let Data::Message(raw) = data else {
        return Answer::Reply(
            "552 5.3.4 Message size exceeds fixed maximum message size".to_owned(),
        );
    };
    let Some(server) = &state.server else {
        return Answer::Reply("530 5.7.0 Authentication required".to_owned());
    };
    // The server's settings as they are now (`PUT /server` may have changed them since AUTH).
    let server = &sim.server(server.id).unwrap_or_else(|| server.clone());
    let recipients: Vec<String> = state.recipients.iter().map(|r| address::key(r)).collect();
    let decision = {
        let mut faults = lock(&sim.faults);
        (!faults.is_empty()).then(|| faults.decide("smtp", &recipients))
    };
    let mut after = None;
    if let Some(decision) = decision {
        if let Some(delay) = decision.delay {
            tokio::time::sleep(delay).await;
        }
        match decision.before_or_after() {
            Ok(then) => after = then,
            Err(Outcome::Drop) => return Answer::Close,
            Err(Outcome::Status(status)) => {
                return Answer::Reply(format!(
                    "451 4.3.0 Temporary failure (simulated {status}), try again later"
                ));
            }
            Err(Outcome::AfterAccept(then)) => after = Some(then),
        }
    }
    let email = mime::to_email(
        &raw,
        state.mail_from.as_deref().unwrap_or_default(),
        &state.recipients,
    );
    let incoming = Incoming {
        email,
        via: Via::Smtp,
        size: raw.len(),
    };
    let reply = match sim.submit(server, vec![incoming]).pop() {
        Some(Ok(receipt)) => format!(
            "250 2.0.0 OK: queued as {}",
            receipt.message_id.unwrap_or_default()
        ),
        // Postmark accepts SMTP mail to suppressed addresses and drops it afterwards.
        Some(Err(refused)) if refused.error_code == 406 => {
            "250 2.0.0 OK: not delivered to inactive recipients".to_owned()
        }
        Some(Err(refused)) if refused.http_status == 413 => {
            "552 5.3.4 Message size exceeds fixed maximum message size".to_owned()
        }
        Some(Err(refused)) => format!("550 5.7.1 {}", refused.message.replace(['\r', '\n'], " ")),
        None => "451 4.3.0 Temporary failure".to_owned(),
    };
    match after {
        None => Answer::Reply(reply),
        Some(AfterAccept::Timeout(hold)) => Answer::CloseAfter(hold),
        // Status and garbage never match SMTP (see FaultAction::applies_to).
        Some(AfterAccept::Drop | AfterAccept::Status(_) | AfterAccept::Garbage) => Answer::Close,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_paths_and_size() {
        assert_eq!(
            path("FROM:<a@example.com> SIZE=100", "FROM:"),
            Some(("a@example.com".to_owned(), "SIZE=100".to_owned()))
        );
        assert_eq!(
            path("to: <b@example.com>", "TO:"),
            Some(("b@example.com".to_owned(), String::new()))
        );
        assert_eq!(path("FROM:a@example.com", "FROM:"), None);
        assert!(too_big("SIZE=99999999"));
        assert!(!too_big("SIZE=1000 BODY=8BITMIME"));
    }
}
