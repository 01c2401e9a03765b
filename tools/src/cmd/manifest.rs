//! CloudLab manifests → cluster files (`percore cluster from-manifest`,
//! used by `cluster/from-manifest.sh`).
//!
//! `geni-get manifest` on any node of an experiment prints the experiment's
//! RSpec manifest (XML). Each `<node client_id="node0">` has its hardware
//! type and, per experiment-LAN interface, an `<ip address="10.10.1.1"
//! type="ipv4"/>`. The split this module makes (documented in
//! `cluster/README.md`):
//!
//! - nodes are ordered by name, numbers compared as numbers (`node2` before
//!   `node10`);
//! - the first N are servers (default: half of them, rounded down, at least
//!   one), pinned to `--server-cores` (default `1-7`: CPU 0 of an m510 is
//!   left to the NIC's interrupts); the rest are clients on
//!   `--client-cores` (default `0-7`);
//! - every node's `addr` is its first experiment-LAN IPv4 address; the
//!   control network (`<host ipv4=…>`) is never used.

use roxmltree::Document;
use wire::Cluster;

/// How to split the nodes.
#[derive(Clone, Debug)]
pub struct Split {
    /// Number of servers (`None`: half the nodes, at least one).
    pub servers: Option<usize>,
    /// CPU list of each server.
    pub server_cores: String,
    /// CPU list of each client.
    pub client_cores: String,
    /// Port of each server's first shard.
    pub base_port: u16,
}

/// One node of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestNode {
    /// `client_id`: the name the experiment gave it (`node0`), which
    /// resolves on every node of the experiment.
    pub name: String,
    /// Its first experiment-LAN IPv4 address.
    pub addr: String,
    /// Hardware type (`m510`), if given.
    pub hardware: Option<String>,
}

/// Reads every node (name, LAN address, hardware type) from a manifest, in
/// natural name order.
pub fn parse_manifest(xml: &str) -> Result<Vec<ManifestNode>, String> {
    let doc = Document::parse(xml).map_err(|e| format!("the manifest is not valid XML: {e}"))?;
    let mut nodes = Vec::new();
    for node in doc.descendants().filter(|n| n.tag_name().name() == "node") {
        let Some(name) = node.attribute("client_id") else { continue };
        let addr = node
            .descendants()
            .filter(|n| n.tag_name().name() == "ip")
            .find(|ip| ip.attribute("type").is_none_or(|t| t.eq_ignore_ascii_case("ipv4")))
            .and_then(|ip| ip.attribute("address"))
            .ok_or_else(|| {
                format!("node {name:?} has no experiment-LAN IPv4 address in the manifest (is it on a LAN?)")
            })?;
        let hardware = node
            .children()
            .find(|n| n.tag_name().name() == "hardware_type")
            .and_then(|h| h.attribute("name"))
            .map(str::to_string);
        nodes.push(ManifestNode { name: name.to_string(), addr: addr.to_string(), hardware });
    }
    if nodes.is_empty() {
        return Err("the manifest lists no <node client_id=…>".into());
    }
    nodes.sort_by_key(|n| natural_key(&n.name));
    Ok(nodes)
}

/// `node10` → ("node", 10): names compare by prefix, then number.
fn natural_key(name: &str) -> (String, u64, String) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (prefix, number) = name.split_at(name.len() - digits);
    (prefix.to_string(), number.parse().unwrap_or(0), name.to_string())
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The cluster file (TOML text) for a manifest, validated.
pub fn cluster_from_manifest(xml: &str, split: &Split) -> Result<String, String> {
    let nodes = parse_manifest(xml)?;
    let servers = split.servers.unwrap_or((nodes.len() / 2).max(1));
    if servers == 0 || servers > nodes.len() {
        return Err(format!("the manifest has {} node(s); cannot make {servers} of them servers", nodes.len()));
    }
    let hardware: Vec<&str> = nodes.iter().filter_map(|n| n.hardware.as_deref()).collect();
    let mut out = format!(
        "# Made by `percore cluster from-manifest` from a CloudLab manifest: {} node(s){}.\n\
         # Servers: the first {servers} by name, shards on CPUs {}; clients: the other {}, load on CPUs {}.\n\
         base_port = {}\n\n[ssh]\noptions = [\"StrictHostKeyChecking=accept-new\"]\ndir = \"percore\"\n",
        nodes.len(),
        hardware.first().map(|h| format!(" ({h})")).unwrap_or_default(),
        split.server_cores,
        nodes.len() - servers,
        split.client_cores,
        split.base_port,
    );
    for (i, n) in nodes.iter().enumerate() {
        if i < servers {
            out.push_str(&format!(
                "\n[[server]]\nname = {}\naddr = {}\ncores = {}\n",
                quoted(&n.name),
                quoted(&n.addr),
                quoted(&split.server_cores)
            ));
        } else {
            out.push_str(&format!(
                "\n[[client]]\nname = {}\naddr = {}\ncores = {}\n",
                quoted(&n.name),
                quoted(&n.addr),
                quoted(&split.client_cores)
            ));
        }
    }
    Cluster::parse(&out, "(from manifest)").map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../cluster/testdata/manifest-m510.xml");

    fn split(servers: Option<usize>) -> Split {
        Split { servers, server_cores: "1-7".into(), client_cores: "0-7".into(), base_port: 7000 }
    }

    #[test]
    fn reads_names_lan_addresses_and_hardware_in_natural_order() {
        let nodes = parse_manifest(FIXTURE).expect("fixture parses");
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["node0", "node1", "node2", "node3", "node4", "node5", "node6", "node7", "node10"]);
        assert_eq!(nodes[0].addr, "10.10.1.1", "the LAN address, not the control one");
        assert_eq!(nodes[8].addr, "10.10.1.11");
        assert_eq!(nodes[0].hardware.as_deref(), Some("m510"));
    }

    #[test]
    fn splits_half_servers_rest_clients() {
        let text = cluster_from_manifest(FIXTURE, &split(None)).expect("valid");
        let c = Cluster::parse(&text, "out").expect("a valid cluster file");
        assert_eq!(c.servers.len(), 4);
        assert_eq!(c.clients.len(), 5);
        assert_eq!(c.servers[0].cores, (1..=7).collect::<Vec<u32>>());
        assert_eq!(c.clients[4].name, "node10");
        assert_eq!(c.clients[4].addr.as_deref(), Some("10.10.1.11"));
        let two = Cluster::parse(&cluster_from_manifest(FIXTURE, &split(Some(2))).expect("valid"), "o").expect("ok");
        assert_eq!(two.servers.len(), 2);
    }

    #[test]
    fn explains_what_is_wrong() {
        assert!(cluster_from_manifest("<rspec>", &split(None)).expect_err("bad xml").contains("not valid XML"));
        let e = cluster_from_manifest("<rspec></rspec>", &split(None)).expect_err("empty");
        assert!(e.contains("no <node"), "{e}");
        let no_lan = r#"<rspec><node client_id="node0"><host name="x" ipv4="1.2.3.4"/></node></rspec>"#;
        let e = cluster_from_manifest(no_lan, &split(None)).expect_err("no lan");
        assert!(e.contains("node \"node0\" has no experiment-LAN"), "{e}");
        assert!(cluster_from_manifest(FIXTURE, &split(Some(10))).is_err());
    }
}
