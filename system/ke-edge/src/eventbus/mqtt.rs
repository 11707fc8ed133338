//! The MQTT adapter: a `rumqttc` client between a broker and DeviceTwin's [`BusEnds`](super::BusEnds).
//!
//! - Connects to `tcp://HOST:PORT` with client id `edgecore-<node>` and a clean session;
//!   after every CONNACK it subscribes to [`SUBSCRIPTIONS`] (a clean session forgets them).
//! - A publication on a subscribed topic goes to DeviceTwin's incoming channel; a full channel
//!   holds the adapter (and so the broker's flow control) rather than dropping it. Payloads
//!   over [`BUS_PAYLOAD_MAX`] are refused at the MQTT layer (the packet size limit).
//! - DeviceTwin's outgoing publications go out with the configured QoS, never retained.
//! - While the broker is unreachable the client retries every [`RECONNECT_DELAY`] (KubeEdge's
//!   5 s), logging once per outage; queued publications wait in rumqttc's bounded request
//!   channel, and DeviceTwin drops (and counts) what does not fit in its own.

use std::time::Duration;

use ke_proto::twin::SUBSCRIPTIONS;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tracing::{debug, info, warn};

use super::{AdapterEnds, BUS_PAYLOAD_MAX, BusMessage};

/// Delay between connection attempts while the broker is away.
pub const RECONNECT_DELAY: Duration = Duration::from_secs(5);
/// Requests (publishes, subscribes) rumqttc holds for the connection.
const REQUEST_QUEUE_MAX: usize = 256;

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// Broker host (IP or name).
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Client id.
    pub client_id: String,
    /// QoS of subscriptions and publications (0, 1, 2).
    pub qos: u8,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
}

/// Why the adapter could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker URL is not `tcp://HOST:PORT`.
    #[error("broker URL {0:?} is not tcp://HOST:PORT")]
    Url(String),
    /// The QoS is not 0, 1 or 2.
    #[error("QoS {0} is not 0, 1 or 2")]
    Qos(u8),
}

impl MqttConfig {
    /// From KubeEdge's `mqttServerExternal` URL, the node name and `mqttQOS`.
    pub fn from_url(url: &str, node: &str, qos: u8) -> Result<Self, Error> {
        let bad = || Error::Url(url.to_owned());
        let rest = url.strip_prefix("tcp://").ok_or_else(bad)?;
        let (host, port) = rest
            .trim_end_matches('/')
            .rsplit_once(':')
            .ok_or_else(bad)?;
        let port = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad());
        }
        rumqttc::qos(qos).map_err(|_| Error::Qos(qos))?;
        Ok(Self {
            host: host.to_owned(),
            port,
            client_id: format!("edgecore-{node}"),
            qos,
            keep_alive: Duration::from_secs(30),
        })
    }

    fn qos(&self) -> QoS {
        rumqttc::qos(self.qos).unwrap_or(QoS::AtMostOnce)
    }
}

/// Runs the adapter until `shutdown` resolves or DeviceTwin's ends close: one client per
/// broker in `brokers` (two with `mqttMode` 1, as KubeEdge's EventBus publishes to and
/// receives from both the internal and the external broker). Publications from every broker
/// reach DeviceTwin; each of DeviceTwin's publications goes to every broker.
pub async fn run(brokers: Vec<MqttConfig>, ends: AdapterEnds, shutdown: impl Future<Output = ()>) {
    let mut clients = Vec::with_capacity(brokers.len());
    let mut polls = Vec::with_capacity(brokers.len());
    let AdapterEnds { incoming, outgoing } = ends;
    for cfg in brokers {
        let mut opts = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
        opts.set_keep_alive(cfg.keep_alive);
        opts.set_clean_session(true);
        opts.set_max_packet_size(BUS_PAYLOAD_MAX + 1024, BUS_PAYLOAD_MAX + 1024);
        let (client, events) = AsyncClient::new(opts, REQUEST_QUEUE_MAX);
        clients.push((client.clone(), cfg.qos()));
        polls.push(poll(events, client, cfg, incoming.clone()));
    }
    drop(incoming);
    tokio::select! {
        () = shutdown => {}
        _ = futures::future::join_all(polls) => {}
        () = publish(&clients, outgoing) => {}
    }
    for (client, _) in clients {
        let _ = client.try_disconnect();
    }
}

async fn poll(
    mut events: EventLoop,
    client: AsyncClient,
    cfg: MqttConfig,
    incoming: tokio::sync::mpsc::Sender<BusMessage>,
) {
    let mut down = false;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                info!(broker = %format!("{}:{}", cfg.host, cfg.port), "connected to the MQTT broker");
                down = false;
                for topic in SUBSCRIPTIONS {
                    if let Err(e) = client.try_subscribe(topic, cfg.qos()) {
                        warn!(topic, error = %e, "cannot subscribe");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let msg = BusMessage {
                    topic: p.topic,
                    payload: p.payload.to_vec(),
                };
                if incoming.send(msg).await.is_err() {
                    return;
                }
            }
            Ok(other) => debug!(event = ?other, "mqtt event"),
            Err(e) => {
                if !down {
                    warn!(broker = %format!("{}:{}", cfg.host, cfg.port), error = %e,
                        retry_in_s = RECONNECT_DELAY.as_secs(), "MQTT broker unreachable");
                    down = true;
                }
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
        }
    }
}

/// Publishes DeviceTwin's messages. With one broker a full request queue holds DeviceTwin
/// (which then drops and counts in its own queue); with two, a message that does not fit one
/// broker's queue is dropped for that broker only, so an unreachable external broker never
/// holds up the internal one.
async fn publish(
    clients: &[(AsyncClient, QoS)],
    mut outgoing: tokio::sync::mpsc::Receiver<BusMessage>,
) {
    let mut dropping = vec![false; clients.len()];
    while let Some(msg) = outgoing.recv().await {
        if let [(client, qos)] = clients {
            if let Err(e) = client.publish(msg.topic, *qos, false, msg.payload).await {
                warn!(error = %e, "MQTT publish failed");
                return;
            }
            continue;
        }
        for ((client, qos), dropping) in clients.iter().zip(&mut dropping) {
            let sent = client.try_publish(msg.topic.clone(), *qos, false, msg.payload.clone());
            match sent {
                Ok(()) => *dropping = false,
                Err(e) if !*dropping => {
                    warn!(error = %e, topic = %msg.topic, "MQTT publish dropped for one broker");
                    *dropping = true;
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn broker_urls_parse_and_bad_ones_are_named() {
        let c = MqttConfig::from_url("tcp://127.0.0.1:1883", "edge-1", 1).unwrap();
        assert_eq!((c.host.as_str(), c.port, c.qos), ("127.0.0.1", 1883, 1));
        assert_eq!(c.client_id, "edgecore-edge-1");
        for bad in [
            "127.0.0.1:1883",
            "ssl://h:1",
            "tcp://:1883",
            "tcp://h:port",
            "tcp://h",
        ] {
            let err = MqttConfig::from_url(bad, "n", 0).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
        assert!(matches!(
            MqttConfig::from_url("tcp://h:1", "n", 3),
            Err(Error::Qos(3))
        ));
    }
}
