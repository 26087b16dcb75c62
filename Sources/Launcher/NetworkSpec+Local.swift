public import LedgerCore
public import Node
public import Contracts

extension NetworkSpec {
    /// The organisations of a local network of `count` (at least 1): the demo's, ordered so that
    /// any prefix makes sense (two hospitals, then the research coordinator and the regulator, then
    /// more hospitals), continued with hospitals `hospital-6`, `hospital-7`, … Each runs a node.
    public static func local(organizations count: Int, config: NetworkConfig = NetworkConfig(), name: String = "medledger-local") -> NetworkSpec {
        let demo = NetworkSpec.demo.organizations
        let preferred = ["st-mary", "north-general", "medtech-research", "device-regulator", "city-childrens"]
            .compactMap { id in demo.first { $0.id == id } }
        let extra = (preferred.count..<max(count, preferred.count)).map { index in
            OrganizationSpec(id: "hospital-\(index + 1)", name: "Hospital \(index + 1)", kind: .hospital)
        }
        return NetworkSpec(name: name, organizations: Array((preferred + extra).prefix(max(count, 1))), config: config)
    }
}
