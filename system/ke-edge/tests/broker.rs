//! The embedded MQTT broker (`ke_edge::eventbus::broker`) over real loopback sockets
//! (`ke_net::TokioTransport`): rumqttc clients and raw bytes from the library level, and
//! Debian's `mosquitto_pub`/`mosquitto_sub` for interoperability (ci/deps.sh installs
//! `mosquitto-clients`; without them those tests fail, naming the package).
//!
//! Absence of a delivery is shown without sleeping: after the message that must not arrive,
//! a sentinel that must arrive is published; per-client delivery is in routing order, so the
//! sentinel coming first proves the other message was not delivered.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed fixture step is a test failure"
)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::BytesMut;
use ke_edge::eventbus::broker::{Broker, BrokerConfig, BrokerMetrics};
use ke_net::{TokioTransport, Transport as _};
use rumqttc::{
    AsyncClient, Connect, Event, MqttOptions, Packet, Publish, QoS, Subscribe, SubscribeReasonCode,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    sync::mpsc,
    task::JoinHandle,
    time::timeout,
};
use tokio_util::sync::CancellationToken;

/// Bound on any single wait; never reached when the broker works.
const PATIENCE: Duration = Duration::from_secs(10);

const DELTA: &str = "$hw/events/device/default/d1/twin/update/delta";

/// A broker on 127.0.0.1:0, stopped when dropped.
struct Running {
    addr: SocketAddr,
    metrics: Arc<BrokerMetrics>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

async fn start(cfg: BrokerConfig) -> Running {
    let any = "127.0.0.1:0".parse().unwrap();
    let broker = Broker::bind(&TokioTransport, any, cfg).await.unwrap();
    let (addr, metrics) = (broker.local_addr(), broker.metrics());
    let stop = CancellationToken::new();
    let task = tokio::spawn(broker.run(stop.clone().cancelled_owned()));
    Running {
        addr,
        metrics,
        stop,
        task,
    }
}

/// A rumqttc client whose event loop runs in a task; its incoming packets arrive on `rx`.
struct Client {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Packet>,
    task: JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connect(addr: SocketAddr, id: &str) -> Client {
    let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    opts.set_max_packet_size(1 << 20, 1 << 20);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(opts, 1024);
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok(ev) = events.poll().await {
            if let Event::Incoming(p) = ev
                && tx.send(p).is_err()
            {
                return;
            }
        }
    });
    let mut c = Client { client, rx, task };
    c.expect(|p| matches!(p, Packet::ConnAck(_))).await;
    c
}

impl Client {
    /// The next incoming packet satisfying `want`, skipping others (PUBACKs, PINGRESPs).
    async fn expect(&mut self, want: impl Fn(&Packet) -> bool) -> Packet {
        loop {
            let p = timeout(PATIENCE, self.rx.recv())
                .await
                .expect("timed out waiting for a packet")
                .expect("the client's event loop ended");
            if want(&p) {
                return p;
            }
        }
    }

    async fn next_publish(&mut self) -> Publish {
        match self.expect(|p| matches!(p, Packet::Publish(_))).await {
            Packet::Publish(p) => p,
            _ => unreachable!(),
        }
    }

    /// Subscribes and waits for the SUBACK; returns its return codes.
    async fn subscribe(&mut self, filter: &str, qos: QoS) -> Vec<SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.unwrap();
        match self.expect(|p| matches!(p, Packet::SubAck(_))).await {
            Packet::SubAck(s) => s.return_codes,
            _ => unreachable!(),
        }
    }

    async fn publish(&self, topic: &str, qos: QoS, payload: &[u8]) {
        self.client
            .publish(topic, qos, false, payload.to_vec())
            .await
            .unwrap();
    }
}

/// A raw TCP connection that has sent CONNECT (`keep_alive` seconds) and read the CONNACK.
async fn raw_connected(addr: SocketAddr, id: &str, keep_alive: u16) -> tokio::net::TcpStream {
    let mut s = TokioTransport.connect(addr).await.unwrap();
    let mut c = Connect::new(id);
    c.keep_alive = keep_alive;
    let mut buf = BytesMut::new();
    Packet::Connect(c).write(&mut buf, usize::MAX).unwrap();
    s.write_all(&buf).await.unwrap();
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0], "CONNACK, accepted");
    s
}

/// Waits until the broker closes `s` (EOF or reset), discarding whatever it sent first.
async fn closed_by_broker(s: &mut tokio::net::TcpStream) {
    let mut sink = vec![0u8; 64 * 1024];
    let closed = timeout(PATIENCE, async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the broker did not close the connection");
}

/// Goal: `$` topics are served as KubeEdge needs them and as MQTT 3.1.1 says. Method: four
/// subscribers (`…/+/+/twin/update/delta` at QoS 1, `$hw/#` at QoS 0, `#` with `+/events/#`,
/// and a one-level `…/+/twin/update/delta`); a QoS 1 publish on a two-level device's delta
/// topic gets a PUBACK and reaches the first two, each at min(publish, granted) QoS; the
/// wildcard-first filters and the one-level filter do not match it (sentinels arrive first).
#[tokio::test]
async fn dollar_topics_reach_matching_filters_only() {
    let b = start(BrokerConfig::default()).await;
    let mut exact = connect(b.addr, "exact").await;
    let mut hw = connect(b.addr, "hw").await;
    let mut all = connect(b.addr, "all").await;
    let mut one_level = connect(b.addr, "one-level").await;
    let ok1 = vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)];
    let ok0 = vec![SubscribeReasonCode::Success(QoS::AtMostOnce)];
    let filter = "$hw/events/device/+/+/twin/update/delta";
    assert_eq!(exact.subscribe(filter, QoS::AtLeastOnce).await, ok1);
    assert_eq!(hw.subscribe("$hw/#", QoS::AtMostOnce).await, ok0);
    assert_eq!(all.subscribe("#", QoS::AtLeastOnce).await, ok1);
    assert_eq!(all.subscribe("+/events/#", QoS::AtLeastOnce).await, ok1);
    let single = "$hw/events/device/+/twin/update/delta";
    assert_eq!(one_level.subscribe(single, QoS::AtLeastOnce).await, ok1);

    let mut publisher = connect(b.addr, "publisher").await;
    publisher
        .publish(DELTA, QoS::AtLeastOnce, b"{\"delta\":1}")
        .await;
    publisher.expect(|p| matches!(p, Packet::PubAck(_))).await;
    let got = exact.next_publish().await;
    assert_eq!((got.topic.as_str(), got.qos), (DELTA, QoS::AtLeastOnce));
    assert_eq!(&got.payload[..], b"{\"delta\":1}");
    let got = hw.next_publish().await;
    assert_eq!((got.topic.as_str(), got.qos), (DELTA, QoS::AtMostOnce));

    publisher
        .publish("plain/events/x", QoS::AtMostOnce, b"s")
        .await;
    let got = all.next_publish().await;
    assert_eq!(
        got.topic, "plain/events/x",
        "`#` must not receive `$` topics"
    );
    let sentinel = "$hw/events/device/d2/twin/update/delta";
    publisher.publish(sentinel, QoS::AtMostOnce, b"s").await;
    let got = one_level.next_publish().await;
    assert_eq!(
        got.topic, sentinel,
        "`+` is one level: a two-level device id is not matched"
    );
    assert_eq!(b.metrics.snapshot().messages_in, 3);
}

/// Goal: UNSUBSCRIBE stops delivery on that filter only. Method: subscribe two filters,
/// unsubscribe one (UNSUBACK awaited), publish on both; only the kept one arrives.
#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let b = start(BrokerConfig::default()).await;
    let mut sub = connect(b.addr, "sub").await;
    sub.subscribe("$hw/events/a", QoS::AtMostOnce).await;
    sub.subscribe("$hw/events/b", QoS::AtMostOnce).await;
    sub.client.unsubscribe("$hw/events/a").await.unwrap();
    sub.expect(|p| matches!(p, Packet::UnsubAck(_))).await;
    let publisher = connect(b.addr, "pub").await;
    publisher
        .publish("$hw/events/a", QoS::AtMostOnce, b"1")
        .await;
    publisher
        .publish("$hw/events/b", QoS::AtMostOnce, b"2")
        .await;
    assert_eq!(sub.next_publish().await.topic, "$hw/events/b");
}

/// Goal: a QoS 2 publish completes its handshake and is delivered once, at QoS 1 (the
/// documented downgrade). Method: rumqttc publishes at QoS 2 and gets PUBCOMP; the QoS 2
/// subscription is granted QoS 1; a sentinel follows the single delivery.
#[tokio::test]
async fn qos2_is_completed_and_delivered_at_qos1() {
    let b = start(BrokerConfig::default()).await;
    let mut sub = connect(b.addr, "sub").await;
    let granted = sub.subscribe("$hw/#", QoS::ExactlyOnce).await;
    assert_eq!(
        granted,
        vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    let mut publisher = connect(b.addr, "pub").await;
    publisher.publish(DELTA, QoS::ExactlyOnce, b"q2").await;
    publisher.expect(|p| matches!(p, Packet::PubComp(_))).await;
    publisher.publish("$hw/end", QoS::AtMostOnce, b"").await;
    let got = sub.next_publish().await;
    assert_eq!((got.topic.as_str(), got.qos), (DELTA, QoS::AtLeastOnce));
    assert_eq!(sub.next_publish().await.topic, "$hw/end");
}

/// Goal: a malformed packet closes only its own connection, counted. Method: a raw client
/// connects, then sends a packet of type 15 (reserved); the broker closes it while a rumqttc
/// client keeps publishing and receiving.
#[tokio::test]
async fn malformed_packet_closes_only_that_connection() {
    let b = start(BrokerConfig::default()).await;
    let mut good = connect(b.addr, "good").await;
    good.subscribe("$hw/#", QoS::AtMostOnce).await;
    let mut raw = raw_connected(b.addr, "raw", 0).await;
    raw.write_all(&[0xF0, 0x00]).await.unwrap();
    closed_by_broker(&mut raw).await;
    good.publish(DELTA, QoS::AtMostOnce, b"still here").await;
    assert_eq!(&good.next_publish().await.payload[..], b"still here");
    assert_eq!(b.metrics.snapshot().closed_protocol, 1);
}

/// Goal: a packet over the size limit closes only its own connection, before its payload is
/// read. Method: a raw client announces a 2 MiB PUBLISH (the limit is 1 MiB) and sends no
/// payload; the broker closes it at once; another client keeps working.
#[tokio::test]
async fn oversized_packet_closes_only_that_connection() {
    let b = start(BrokerConfig::default()).await;
    let mut good = connect(b.addr, "good").await;
    good.subscribe("$hw/#", QoS::AtMostOnce).await;
    let mut raw = raw_connected(b.addr, "big", 0).await;
    // PUBLISH, remaining length 2 MiB as a variable-byte integer.
    raw.write_all(&[0x30, 0x80, 0x80, 0x80, 0x01])
        .await
        .unwrap();
    closed_by_broker(&mut raw).await;
    good.publish(DELTA, QoS::AtMostOnce, b"ok").await;
    assert_eq!(&good.next_publish().await.payload[..], b"ok");
    assert_eq!(b.metrics.snapshot().closed_protocol, 1);
}

/// Goal: a subscriber that never reads does not hold up the publisher or other subscribers;
/// its queue bound is hit and the drops are counted. Method: a raw subscriber to `$hw/#`
/// stops reading; 600 messages of 64 KiB (more than loopback's socket buffers and the
/// 100-message queue hold) are published at QoS 1, each waiting only for a reading
/// subscriber to receive it; every one gets its PUBACK and arrives, and drops are counted.
#[tokio::test]
async fn slow_subscriber_does_not_block_the_publisher() {
    let b = start(BrokerConfig::default()).await;
    let mut slow = raw_connected(b.addr, "slow", 0).await;
    let mut buf = BytesMut::new();
    let mut sub = Subscribe::new("$hw/#", QoS::AtMostOnce);
    sub.pkid = 1;
    Packet::Subscribe(sub).write(&mut buf, usize::MAX).unwrap();
    slow.write_all(&buf).await.unwrap();
    let mut suback = [0u8; 5];
    slow.read_exact(&mut suback).await.unwrap();
    assert_eq!(suback, [0x90, 3, 0, 1, 0], "SUBACK granted QoS 0");
    let mut fast = connect(b.addr, "fast").await;
    fast.subscribe("$hw/#", QoS::AtLeastOnce).await;
    let mut publisher = connect(b.addr, "publisher").await;
    let payload = vec![7u8; 64 * 1024];
    let started = tokio::time::Instant::now();
    for i in 0..600u32 {
        let topic = format!("$hw/events/n/{i}");
        publisher.publish(&topic, QoS::AtLeastOnce, &payload).await;
        publisher.expect(|p| matches!(p, Packet::PubAck(_))).await;
        assert_eq!(fast.next_publish().await.topic, topic);
    }
    let m = b.metrics.snapshot();
    assert_eq!(m.messages_in, 600);
    assert!(
        m.dropped > 0,
        "the slow subscriber's queue never filled: {m:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    drop(slow);
}

/// Goal: a second CONNECT with a connected client id takes the session over. Method: a raw
/// client "dup" connects; a rumqttc client "dup" connects; the raw connection is closed and
/// the new one is served.
#[tokio::test]
async fn same_client_id_takes_the_session_over() {
    let b = start(BrokerConfig::default()).await;
    let mut old = raw_connected(b.addr, "dup", 0).await;
    let mut new = connect(b.addr, "dup").await;
    closed_by_broker(&mut old).await;
    new.subscribe("$hw/x", QoS::AtMostOnce).await;
    new.publish("$hw/x", QoS::AtMostOnce, b"mine").await;
    assert_eq!(&new.next_publish().await.payload[..], b"mine");
    assert_eq!(b.metrics.snapshot().clients, 1);
}

/// Goal: keep-alive is enforced: a client silent for 1.5× its keep-alive is closed, one that
/// pings is not. Method: two raw clients with a 1 s keep-alive; one sends PINGREQ every
/// 500 ms (and gets PINGRESP); the other sends nothing and is closed.
#[tokio::test]
async fn silent_clients_are_closed_after_one_and_a_half_keep_alives() {
    let b = start(BrokerConfig::default()).await;
    let mut silent = raw_connected(b.addr, "silent", 1).await;
    let mut pinging = raw_connected(b.addr, "pinging", 1).await;
    let started = tokio::time::Instant::now();
    let pings = async {
        for _ in 0..6 {
            pinging.write_all(&[0xC0, 0]).await.unwrap();
            let mut resp = [0u8; 2];
            pinging.read_exact(&mut resp).await.unwrap();
            assert_eq!(resp, [0xD0, 0], "PINGRESP");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let (_, ()) = tokio::join!(closed_by_broker(&mut silent), pings);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "closed too early: {waited:?}"
    );
    assert_eq!(
        b.metrics.snapshot().clients,
        1,
        "the pinging client is still connected"
    );
}

/// `mosquitto_sub`/`mosquitto_pub` from Debian's mosquitto-clients.
fn mosquitto(bin: &str) -> tokio::process::Command {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|d| d.join(bin).is_file());
    assert!(
        found,
        "{bin} is not installed: run ci/deps.sh (Debian package mosquitto-clients)"
    );
    tokio::process::Command::new(bin)
}

/// Goal: Debian's mosquitto clients interoperate with the broker on `$` topics, at QoS 1 and
/// 2. Method: `mosquitto_sub -t '$hw/events/#' -C 1` runs; `mosquitto_pub` publishes (QoS 2,
/// so its exit status shows the PUBREC/PUBCOMP exchange completed) until the subscriber has
/// printed the message and exited.
#[tokio::test]
async fn mosquitto_clients_interoperate() {
    let b = start(BrokerConfig::default()).await;
    let port = b.addr.port().to_string();
    let sub = mosquitto("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port, "-q", "1", "-v", "-C", "1"])
        .args(["-t", "$hw/events/#"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = tokio::spawn(sub.wait_with_output());
    let published = async {
        loop {
            let ok = mosquitto("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port, "-q", "2"])
                .args(["-t", DELTA, "-m", "hello from mosquitto_pub"])
                .status()
                .await
                .unwrap()
                .success();
            assert!(ok, "mosquitto_pub failed");
            if output.is_finished() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    timeout(PATIENCE, published)
        .await
        .expect("mosquitto_sub never received a message");
    let out = output.await.unwrap().unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(line.trim(), format!("{DELTA} hello from mosquitto_pub"));
}

/// Goal: the broker stops with its future: every connection closes at shutdown. Method: a
/// raw client is connected; the broker's shutdown fires; the connection is closed.
#[tokio::test]
async fn shutdown_closes_every_connection() {
    let b = start(BrokerConfig::default()).await;
    let mut raw = raw_connected(b.addr, "raw", 0).await;
    b.stop.cancel();
    closed_by_broker(&mut raw).await;
}
