//! The mapper loop over MQTT (`rumqttc`, the same client as edgecore's EventBus).
//!
//! - After every CONNACK: subscribe to `…/twin/update/delta` of the device and report the
//!   state (`online`).
//! - Every period: read every property and publish one `…/twin/update` with each actual value
//!   (KubeEdge's payload: `actual.value`, `actual.metadata.timestamp`, `metadata.type`). A read
//!   that fails marks the device `unhealthy` (a `…/state/update`) until reads succeed again.
//! - A delta: each writable property named in it is written with the expected value, read
//!   back, and reported at once; read-only or unknown properties are logged and skipped (the
//!   delta comes again with the next change).
//!
//! Publications that do not fit rumqttc's request queue are dropped and counted; the next
//! period reports current values anyway.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use ke_core::Clock;
use ke_proto::twin::{
    self, MsgTwin, StateUpdate, TwinDelta, TwinUpdate, TwinValue, TypeMetadata, ValueMetadata,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tracing::{debug, info, warn};

use crate::driver::Driver;

/// Where the broker is and which device this mapper serves.
#[derive(Debug, Clone)]
pub struct MapperConfig {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Device namespace.
    pub namespace: String,
    /// Device name.
    pub name: String,
    /// Report period.
    pub period: Duration,
    /// MQTT QoS (0, 1, 2).
    pub qos: u8,
}

impl MapperConfig {
    fn topic(&self, suffix: &str) -> String {
        twin::device_topic(&self.namespace, &self.name, suffix)
    }

    fn qos(&self) -> QoS {
        rumqttc::qos(self.qos).unwrap_or(QoS::AtLeastOnce)
    }
}

/// The mapper's running state.
struct Mapper<D> {
    cfg: MapperConfig,
    driver: D,
    client: AsyncClient,
    clock: Arc<dyn Clock>,
    seq: u64,
    healthy: Option<bool>,
    dropped: u64,
}

/// Runs the mapper until `shutdown` resolves.
pub async fn run<D: Driver>(
    cfg: MapperConfig,
    driver: D,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) {
    let client_id = format!("mapper-{}-{}", cfg.namespace, cfg.name);
    let mut opts = MqttOptions::new(client_id, cfg.host.clone(), cfg.port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_session(true);
    let (client, mut events) = AsyncClient::new(opts, 256);
    let mut m = Mapper {
        cfg,
        driver,
        client,
        clock,
        seq: 0,
        healthy: None,
        dropped: 0,
    };
    let mut tick = tokio::time::interval(m.cfg.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut down = false;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            event = events.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    info!(device = %format!("{}/{}", m.cfg.namespace, m.cfg.name), "connected to the broker");
                    down = false;
                    m.connected();
                }
                Ok(Event::Incoming(Packet::Publish(p))) => m.delta(&p.payload).await,
                Ok(_) => {}
                Err(e) => {
                    if !down {
                        warn!(error = %e, "broker unreachable; retrying every 5 s");
                        down = true;
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            },
            _ = tick.tick() => m.report_all().await,
        }
    }
    let _ = m.client.try_disconnect();
}

impl<D: Driver> Mapper<D> {
    fn event_id(&mut self) -> String {
        self.seq += 1;
        format!("{}-{}", self.cfg.name, self.seq)
    }

    fn publish(&mut self, topic: String, payload: Vec<u8>) {
        if let Err(e) = self
            .client
            .try_publish(topic, self.cfg.qos(), false, payload)
        {
            self.dropped += 1;
            debug!(error = %e, dropped = self.dropped, "publication dropped");
        }
    }

    fn connected(&mut self) {
        let delta = self.cfg.topic("twin/update/delta");
        if let Err(e) = self.client.try_subscribe(delta, self.cfg.qos()) {
            warn!(error = %e, "cannot subscribe to the delta topic");
        }
        self.healthy = None;
    }

    fn state(&mut self, healthy: bool) {
        if self.healthy == Some(healthy) {
            return;
        }
        self.healthy = Some(healthy);
        let update = StateUpdate {
            event_id: self.event_id(),
            timestamp: self.clock.now_millis(),
            state: if healthy { "online" } else { "unhealthy" }.to_owned(),
            attributes: None,
        };
        let payload = serde_json::to_vec(&update).unwrap_or_default();
        self.publish(self.cfg.topic("state/update"), payload);
    }

    /// Reads `names` and publishes one twin update with the values read.
    async fn report(&mut self, names: &[String]) {
        let mut twins = BTreeMap::new();
        let mut healthy = true;
        for name in names {
            let kind = self
                .driver
                .properties()
                .iter()
                .find(|p| &p.name == name)
                .map(|p| p.kind.value_type());
            match self.driver.read(name).await {
                Ok(value) => {
                    let twin = MsgTwin {
                        actual: Some(TwinValue {
                            value: Some(value),
                            metadata: Some(ValueMetadata {
                                timestamp: self.clock.now_millis(),
                            }),
                        }),
                        metadata: kind.map(|k| TypeMetadata { kind: k.to_owned() }),
                        ..MsgTwin::default()
                    };
                    twins.insert(name.clone(), twin);
                }
                Err(e) => {
                    warn!(property = %name, error = %e, "read failed");
                    healthy = false;
                }
            }
        }
        self.state(healthy);
        if twins.is_empty() {
            return;
        }
        let update = TwinUpdate {
            event_id: self.event_id(),
            timestamp: self.clock.now_millis(),
            twin: twins,
        };
        let payload = serde_json::to_vec(&update).unwrap_or_default();
        self.publish(self.cfg.topic("twin/update"), payload);
    }

    async fn report_all(&mut self) {
        let names: Vec<String> = self
            .driver
            .properties()
            .iter()
            .map(|p| p.name.clone())
            .collect();
        self.report(&names).await;
    }

    /// Applies a delta: writes each writable property to its expected value, then reports.
    async fn delta(&mut self, payload: &[u8]) {
        let delta: TwinDelta = match serde_json::from_slice(payload) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "malformed delta; ignored");
                return;
            }
        };
        let mut written = Vec::new();
        for (name, value) in &delta.delta {
            match self.driver.write(name, value).await {
                Ok(()) => {
                    info!(property = %name, %value, "desired value applied");
                    written.push(name.clone());
                }
                Err(e) => warn!(property = %name, error = %e, "cannot apply desired value"),
            }
        }
        if !written.is_empty() {
            self.report(&written).await;
        }
    }
}
