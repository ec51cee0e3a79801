//! A TCP proxy that takes the database away from iamd and gives it back, for the outage
//! tests and the outage benchmark (`benches/outage.rs` includes this file by path).
//!
//! Two ways to go away: [`Proxy::cut`] is a database that went down (every connection
//! closed, every new one closed as soon as it is accepted); [`Proxy::stall`] is a database
//! host that went dark (iamd's side of every connection stays open and nothing more crosses
//! it, new ones are accepted and never answered). [`Proxy::restore`] forwards new
//! connections again and closes the stalled ones, as a peer that forgot them would.
//!
//! A stall closes the database's side of each connection at once, as the death of its host
//! would: the server rolls back what they had open, so no transaction of this test stays
//! open on a server other tests share (one would hold back the log of every schema on it).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Open,
    Cut,
    Stalled,
}

pub struct Proxy {
    /// Where iamd connects instead of the database.
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accepting: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, _) = watch::channel(Mode::Open);
        let accepting = tokio::spawn(accept(listener, upstream, mode.clone()));
        Ok(Proxy { addr, mode, accepting })
    }

    /// The database goes down: every live connection is closed, and new ones are closed as
    /// soon as they are accepted.
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    /// The network stops: live connections stay open but carry nothing more, and new ones
    /// are accepted and never answered.
    pub fn stall(&self) {
        self.mode.send_replace(Mode::Stalled);
    }

    /// The database is back: new connections are forwarded again (stalled ones are closed).
    pub fn restore(&self) {
        self.mode.send_replace(Mode::Open);
    }

    /// The database URL `url` (a `postgres://` one) with its host and port replaced by the
    /// proxy's: same user, password, database and options.
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let user = authority.rsplit_once('@').map(|(user, _)| format!("{user}@")).unwrap_or_default();
        format!("{scheme}://{user}{}{tail}", self.addr)
    }
}

/// The TCP address a database URL names (its first host).
pub async fn database_addr(url: &str) -> std::io::Result<SocketAddr> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let config: tokio_postgres::Config = url.parse().map_err(|e| invalid(format!("the database URL: {e}")))?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        other => return Err(invalid(format!("a proxy needs a database reached over TCP, not {other:?}"))),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let found = tokio::net::lookup_host((host.as_str(), port)).await?.next();
    found.ok_or_else(|| invalid(format!("`{host}` resolves to no address")))
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.mode.send_replace(Mode::Cut);
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, mode: watch::Sender<Mode>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        // Subscribed before the look, so a change that comes in between still reaches the pump.
        let mut changed = mode.subscribe();
        let now = *changed.borrow_and_update();
        tokio::spawn(async move {
            match now {
                Mode::Cut => return,
                Mode::Stalled => {
                    // Held open, unanswered, until the proxy opens again (or is dropped).
                    let _ = changed.wait_for(|mode| *mode != Mode::Stalled).await;
                    return;
                }
                Mode::Open => {}
            }
            let Ok(mut server) = TcpStream::connect(upstream).await else { return };
            // As the client and server set it for themselves: without it, Nagle's algorithm
            // holds back each small message of a pipelined exchange for a delayed ACK.
            if client.set_nodelay(true).and(server.set_nodelay(true)).is_err() {
                return;
            }
            let mut client = client;
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                _ = changed.wait_for(|mode| *mode != Mode::Open) => {}
            }
            drop(server);
            if *changed.borrow() == Mode::Stalled {
                let _ = changed.wait_for(|mode| *mode != Mode::Stalled).await;
            }
            drop(client);
        });
    }
}
