//! Networks: `/networks/*` bodies (the spec's `Network`, `IPAM`,
//! `NetworkCreateRequest`, `NetworkConnectRequest`, …).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::containers::EndpointSettings;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    #[serde(rename = "IPRange", skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auxiliary_addresses: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ipam {
    pub driver: String,
    pub config: Option<Vec<IpamConfig>>,
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkContainer {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConfigReference {
    pub network: String,
}

/// `GET /networks/{id}` and the items of `GET /networks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_from: ConfigReference,
    pub config_only: bool,
    pub containers: BTreeMap<String, NetworkContainer>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// `POST /networks/create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateRequest {
    pub name: String,
    pub check_duplicate: Option<bool>,
    pub driver: String,
    pub scope: String,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Option<Ipam>,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
    pub options: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateResponse {
    pub id: String,
    pub warning: String,
}

/// `POST /networks/{id}/connect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkConnectRequest {
    pub container: String,
    pub endpoint_config: Option<EndpointSettings>,
}

/// `POST /networks/{id}/disconnect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkDisconnectRequest {
    pub container: String,
    pub force: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkPruneResponse {
    pub networks_deleted: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_reads_the_clis_body() {
        let body = r#"{"Name":"n","CheckDuplicate":true,"Driver":"bridge","Scope":"",
            "EnableIPv6":null,"IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.1.0.0/24",
            "IPRange":"10.1.0.128/25","Gateway":"10.1.0.1"}]},"Internal":true,"Attachable":false,
            "Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{"a":"b"},"Labels":{"l":"v"}}"#;
        let r: NetworkCreateRequest = serde_json::from_str(body).unwrap();
        let c = &r.ipam.unwrap().config.unwrap()[0];
        assert_eq!(
            (c.subnet.as_str(), c.ip_range.as_str()),
            ("10.1.0.0/24", "10.1.0.128/25")
        );
        assert!(r.internal);
        assert_eq!(r.labels.unwrap()["l"], "v");
    }

    #[test]
    fn network_has_the_specs_field_names() {
        let v = serde_json::to_value(Network::default()).unwrap();
        for k in [
            "Name",
            "Id",
            "Created",
            "Scope",
            "Driver",
            "EnableIPv6",
            "IPAM",
            "Internal",
            "Containers",
            "Options",
            "Labels",
            "ConfigFrom",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
    }
}
