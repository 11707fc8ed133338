//! EventBus: the edge's MQTT side. DeviceTwin never touches MQTT itself; it reads and writes
//! [`BusMessage`]s on two bounded channels ([`BusEnds`]), and whatever sits at the other end
//! carries them:
//!
//! - [`mqtt`]: a `rumqttc` client to one or two brokers (KubeEdge's `mqttServerExternal`,
//!   default `tcp://127.0.0.1:1883`, and/or `mqttServerInternal`), subscribing to
//!   [`ke_proto::twin::SUBSCRIPTIONS`] with the configured QoS and reconnecting every 5 s
//!   while a broker is away (the daemon);
//! - [`broker`]: the embedded MQTT 3.1.1 broker edgecore runs on `mqttServerInternal` with
//!   `mqttMode` 0 or 1, over a `ke_net::Transport`;
//! - an in-memory bus in the simulator, where virtual mappers publish and subscribe on the
//!   same topics with the same payloads.
//!
//! rumqttc opens its socket with tokio directly, outside the `ke_net::Transport` seam: that is
//! why the simulator never runs [`mqtt`] and uses the channel seam instead. The broker does
//! take its sockets from the transport.

pub mod broker;
pub mod mqtt;

use tokio::sync::mpsc;

/// Messages waiting in either direction between DeviceTwin and the bus adapter.
pub const BUS_QUEUE_MAX: usize = 256;
/// Largest payload accepted from or sent to the bus (KubeEdge's twin payloads are small;
/// anything larger is refused, not truncated).
pub const BUS_PAYLOAD_MAX: usize = 64 * 1024;

/// One MQTT publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    /// The topic.
    pub topic: String,
    /// The payload (JSON for every topic DeviceTwin uses).
    pub payload: Vec<u8>,
}

/// DeviceTwin's ends of the bus: publications arriving from mappers, and publications to
/// send to them.
#[derive(Debug)]
pub struct BusEnds {
    /// What mappers published on a subscribed topic.
    pub incoming: mpsc::Receiver<BusMessage>,
    /// What to publish.
    pub outgoing: mpsc::Sender<BusMessage>,
}

/// The adapter's ends, paired with [`BusEnds`].
#[derive(Debug)]
pub struct AdapterEnds {
    /// Where to put what mappers published.
    pub incoming: mpsc::Sender<BusMessage>,
    /// What DeviceTwin wants published.
    pub outgoing: mpsc::Receiver<BusMessage>,
}

/// A connected pair of bounded channels: DeviceTwin's ends and the adapter's.
pub fn bus_pair() -> (BusEnds, AdapterEnds) {
    let (in_tx, in_rx) = mpsc::channel(BUS_QUEUE_MAX);
    let (out_tx, out_rx) = mpsc::channel(BUS_QUEUE_MAX);
    (
        BusEnds {
            incoming: in_rx,
            outgoing: out_tx,
        },
        AdapterEnds {
            incoming: in_tx,
            outgoing: out_rx,
        },
    )
}
