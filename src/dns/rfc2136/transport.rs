//! Sending one DNS message: UDP first, TCP when the answer is truncated, bounded by a deadline.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

/// Why an exchange with a server produced no answer.
#[derive(Debug)]
pub(super) enum ExchangeError {
    Encode(String),
    Io(&'static str, std::io::Error),
    Timeout(Duration),
    Malformed(String),
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Encode(reason) => write!(f, "cannot encode the message: {reason}"),
            Self::Io(action, err) => write!(f, "cannot {action}: {err}"),
            Self::Timeout(timeout) => write!(f, "no answer within {timeout:?}"),
            Self::Malformed(reason) => write!(f, "malformed answer: {reason}"),
        }
    }
}

/// Sends `request` over UDP (resending a few times within `timeout`) and returns the matching
/// answer, decoded and raw; a truncated answer is fetched again over TCP.
pub(super) async fn exchange(
    server: SocketAddr,
    request: &Message,
    timeout: Duration,
) -> Result<(Message, Vec<u8>), ExchangeError> {
    let bytes = request
        .to_vec()
        .map_err(|err| ExchangeError::Encode(err.to_string()))?;
    let deadline = deadline_after(timeout);
    let id = request.metadata.id;
    let answer = exchange_udp(server, &bytes, id, deadline, timeout).await?;
    if !answer.0.metadata.truncation {
        return Ok(answer);
    }
    exchange_tcp(server, &bytes, id, deadline, timeout).await
}

async fn exchange_udp(
    server: SocketAddr,
    request: &[u8],
    id: u16,
    deadline: Instant,
    timeout: Duration,
) -> Result<(Message, Vec<u8>), ExchangeError> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|err| ExchangeError::Io("open a UDP socket", err))?;
    socket
        .connect(server)
        .await
        .map_err(|err| ExchangeError::Io("reach the server", err))?;
    // Resend twice within the timeout: a lost datagram should not cost the whole timeout.
    let resend_every = (timeout / 3).max(Duration::from_millis(100));
    let mut buffer = vec![0u8; usize::from(u16::MAX)];
    loop {
        socket
            .send(request)
            .await
            .map_err(|err| ExchangeError::Io("send to the server", err))?;
        let resend_at = deadline_after(resend_every).min(deadline);
        while let Ok(received) = tokio::time::timeout_at(resend_at, socket.recv(&mut buffer)).await
        {
            let length =
                received.map_err(|err| ExchangeError::Io("receive from the server", err))?;
            let datagram = buffer.get(..length).unwrap_or_default();
            if let Some(answer) = matching_answer(datagram, id)? {
                return Ok((answer, datagram.to_vec()));
            }
        }
        if Instant::now() >= deadline {
            return Err(ExchangeError::Timeout(timeout));
        }
    }
}

async fn exchange_tcp(
    server: SocketAddr,
    request: &[u8],
    id: u16,
    deadline: Instant,
    timeout: Duration,
) -> Result<(Message, Vec<u8>), ExchangeError> {
    let work = async {
        let mut stream = TcpStream::connect(server)
            .await
            .map_err(|err| ExchangeError::Io("connect over TCP", err))?;
        let length = u16::try_from(request.len())
            .map_err(|_| ExchangeError::Encode("message longer than 65535 bytes".to_string()))?;
        let mut framed = Vec::with_capacity(request.len() + 2);
        framed.extend_from_slice(&length.to_be_bytes());
        framed.extend_from_slice(request);
        stream
            .write_all(&framed)
            .await
            .map_err(|err| ExchangeError::Io("send over TCP", err))?;
        loop {
            let length = stream
                .read_u16()
                .await
                .map_err(|err| ExchangeError::Io("receive over TCP", err))?;
            let mut answer = vec![0u8; usize::from(length)];
            stream
                .read_exact(&mut answer)
                .await
                .map_err(|err| ExchangeError::Io("receive over TCP", err))?;
            if let Some(message) = matching_answer(&answer, id)? {
                return Ok((message, answer));
            }
        }
    };
    tokio::time::timeout_at(deadline, work)
        .await
        .map_err(|_| ExchangeError::Timeout(timeout))?
}

/// Decodes `datagram` if it is the answer to request `id`; anything else is ignored.
fn matching_answer(datagram: &[u8], id: u16) -> Result<Option<Message>, ExchangeError> {
    let is_answer = matches!(datagram, [high, low, flags, ..]
        if u16::from_be_bytes([*high, *low]) == id && flags & 0x80 != 0);
    if !is_answer {
        return Ok(None);
    }
    let message =
        Message::from_vec(datagram).map_err(|err| ExchangeError::Malformed(err.to_string()))?;
    Ok((message.metadata.message_type == MessageType::Response).then_some(message))
}

/// `timeout` from now; a timeout too large to represent means "a year from now".
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}
