#!/usr/bin/env python3
"""Invariants of deploy/ that a schema cannot see, asserted on the rendered manifests.

Run by deploy/check.sh (which renders every kustomization first):

    check_invariants.py --deploy DIR --rendered DIR --configs-out DIR [--reference DIR]

--rendered holds one <name>.yaml per kustomization root as `kubectl kustomize` printed it (names from
check.sh: k8s-base, k8s-overlays-deployment, k8s-overlays-statefulset, seccomp). Every tailgate config
found (ConfigMaps, Operator spec.config, Helm alternateConfig, deploy/local) is written to --configs-out
as <origin>.yaml for check.sh's `tailgate validate` step. Prints one line per check and a closing
"invariants: N passed, N failed" line; exits 1 if any failed.
"""

import argparse
import json
import pathlib
import re
import sys

import yaml

HEALTH_PORT = 13133
METRICS_PORT = 8888
SPANMETRICS_PORT = 8889
SECCOMP_PROFILE = "tailgate/io-uring.json"
IO_URING = {"io_uring_setup", "io_uring_enter", "io_uring_register"}
RESOLVER_VERBS = {"get", "list", "watch"}
# Slack for the exporter's last send after the final batch, in the termination budget.
EXPORT_SLACK_S = 5
# Gateway membership (issue 18): the hand-over phase's bound, the default drain_timeout, the margin's
# floor and the DNS cache ceiling a dns resolver's skew includes (proxy/src/processor/tail_sampling).
HANDOVER_S = 5
DRAIN_TIMEOUT_S = 10
MIN_MARGIN_S = 1
DNS_CACHE_CEILING_S = 30


# === reporting ===

class Report:
    """Counts checks; a failed check prints why, so one run shows every problem."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what, why=""):
        if cond:
            self.passed += 1
            print(f"  ok    {what}")
        else:
            self.failed += 1
            print(f"  FAIL  {what}" + (f": {why}" if why else ""))
        return bool(cond)


# === small helpers ===

def load_docs(path):
    return [d for d in yaml.safe_load_all(pathlib.Path(path).read_text()) if d]


def find(docs, kind, name=None):
    return [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs, kind, name=None):
    found = find(docs, kind, name)
    return found[0] if len(found) == 1 else None


def selects(selector, labels):
    """True if a Service/label selector (plain map) is non-empty and matches the labels."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def mib(quantity):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G)?", str(quantity))
    if not m:
        raise ValueError(f"memory quantity {quantity!r}")
    factor = {None: 1 / 2**20, "Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 2**20,
              "k": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20}[m.group(2)]
    return float(m.group(1)) * factor


def seconds(duration):
    """Collector durations ("30s", "100ms", "1m") as float seconds."""
    total, rest = 0.0, str(duration)
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", rest):
        total += float(value) * {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    if not re.fullmatch(r"((\d+(?:\.\d+)?)(ms|s|m|h))+", rest):
        raise ValueError(f"duration {duration!r}")
    return total


def port_of(endpoint):
    return int(str(endpoint).rsplit(":", 1)[1])


def host_of(endpoint):
    return str(endpoint).rsplit(":", 1)[0]


def lb_exporter(cfg):
    exporters = cfg.get("exporters") or {}
    for key, value in exporters.items():
        if key.split("/")[0] in ("loadbalancing", "load_balancing"):
            return value or {}
    return None


def config_listen_endpoints(cfg):
    """Every endpoint the config listens on: receivers, prometheus exporters, health, telemetry."""
    out = []
    for rcv in (cfg.get("receivers") or {}).values():
        for proto in ((rcv or {}).get("protocols") or {}).values():
            if proto and "endpoint" in proto:
                out.append(proto["endpoint"])
    for key, exp in (cfg.get("exporters") or {}).items():
        if key.split("/")[0] == "prometheus" and exp and "endpoint" in exp:
            out.append(exp["endpoint"])
    health = ((cfg.get("extensions") or {}).get("health_check") or {}).get("endpoint")
    if health:
        out.append(health)
    address = (((cfg.get("service") or {}).get("telemetry") or {}).get("metrics") or {}).get("address")
    if address:
        out.append(address)
    return out


def named_port(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    return None


def membership(cfg):
    """The gateway's tail_sampling.tailgate.membership block, or None."""
    ts = (cfg.get("processors") or {}).get("tail_sampling") or {}
    return (ts.get("tailgate") or {}).get("membership")


def membership_grace(cfg):
    """membership.grace as tailgate derives it when unset: decision_wait + the resolver's skew + margin."""
    m = membership(cfg)
    if m is None:
        return None
    if "grace" in m:
        return seconds(m["grace"])
    wait = seconds(cfg["processors"]["tail_sampling"].get("decision_wait", "30s"))
    resolver = m.get("resolver") or {}
    if "dns" in resolver:
        dns = resolver["dns"]
        skew = seconds(dns.get("interval", "5s")) + seconds(dns.get("timeout", "1s")) + DNS_CACHE_CEILING_S
    elif "k8s" in resolver:
        skew = seconds(resolver["k8s"].get("timeout", "1s")) + 5
    else:
        skew = 0
    return wait + skew + MIN_MARGIN_S


def drain_seconds(cfg):
    """What a pod must finish after SIGTERM: pending decisions, the last batch, one export; with
    membership the drain phases (grace + hand-over) and then drain_timeout."""
    grace = membership_grace(cfg)
    if grace is not None:
        return grace + HANDOVER_S + DRAIN_TIMEOUT_S + EXPORT_SLACK_S
    procs = cfg.get("processors") or {}
    wait = seconds(procs["tail_sampling"]["decision_wait"]) if "tail_sampling" in procs else 0
    batch = seconds(procs["batch"].get("timeout", "200ms")) if "batch" in procs else 0
    return wait + batch + EXPORT_SLACK_S


# === checks shared by the kustomize overlays and the drop-in examples ===

def check_config_for_pod(r, where, cfg):
    """A config meant for a pod: health_check for the probes, everything bound on 0.0.0.0."""
    health = ((cfg.get("extensions") or {}).get("health_check") or {}).get("endpoint")
    r.check(health == f"0.0.0.0:{HEALTH_PORT}", f"{where}: health_check on 0.0.0.0:{HEALTH_PORT}", str(health))
    r.check("health_check" in ((cfg.get("service") or {}).get("extensions") or []),
            f"{where}: health_check enabled in service.extensions")
    address = (((cfg.get("service") or {}).get("telemetry") or {}).get("metrics") or {}).get("address")
    r.check(address == f"0.0.0.0:{METRICS_PORT}", f"{where}: self-telemetry on 0.0.0.0:{METRICS_PORT}", str(address))
    loopback = [e for e in config_listen_endpoints(cfg) if host_of(e) != "0.0.0.0"]
    r.check(not loopback, f"{where}: receivers and metrics bind 0.0.0.0", f"{loopback}")


def check_memory_limit(r, where, cfg, limit_quantity):
    ml = (cfg.get("processors") or {}).get("memory_limiter") or {}
    limit = mib(limit_quantity)
    ratio = ml.get("limit_mib", 0) / limit
    r.check(0.70 <= ratio <= 0.80, f"{where}: memory_limiter.limit_mib is ~75% of the memory limit",
            f"{ml.get('limit_mib')} MiB / {limit_quantity} = {ratio:.2f}")
    r.check(0 < ml.get("spike_limit_mib", 0) < ml.get("limit_mib", 0),
            f"{where}: spike_limit_mib below limit_mib")


def check_pod_security(r, where, pod, container):
    psc = pod.get("securityContext") or {}
    csc = container.get("securityContext") or {}
    seccomp = csc.get("seccompProfile") or psc.get("seccompProfile") or {}
    r.check(seccomp.get("type") == "Localhost" and seccomp.get("localhostProfile") == SECCOMP_PROFILE,
            f"{where}: seccomp Localhost {SECCOMP_PROFILE}", str(seccomp))
    r.check(psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot")
    r.check(csc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation false")
    r.check("ALL" in ((csc.get("capabilities") or {}).get("drop") or []), f"{where}: capabilities drop ALL")


def prestop_seconds(lifecycle):
    pre = (lifecycle or {}).get("preStop") or {}
    return (pre.get("sleep") or {}).get("seconds")


def health_paths(cfg):
    """(liveness, readiness) paths of the config's health_check: its `path` (OK through the drain) and
    `tailgate.readiness_path` (fails from SIGTERM on)."""
    hc = ((cfg.get("extensions") or {}).get("health_check") or {})
    return hc.get("path", "/"), (hc.get("tailgate") or {}).get("readiness_path", "/ready")


def check_termination(r, where, cfg, grace, lifecycle):
    pre = prestop_seconds(lifecycle)
    r.check(isinstance(pre, int) and pre > 0, f"{where}: preStop sleep", str(lifecycle))
    need = (pre or 0) + drain_seconds(cfg)
    r.check(isinstance(grace, int) and grace > need,
            f"{where}: terminationGracePeriodSeconds > preStop + drain (decisions or membership phases) + export",
            f"{grace} <= {need:g}")


def anti_affinity_ok(affinity, pod_labels):
    terms = (((affinity or {}).get("podAntiAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or [])
    for term in terms:
        exprs = (term.get("labelSelector") or {}).get("matchExpressions") or []
        match = (term.get("labelSelector") or {}).get("matchLabels") or {}
        hits = all(pod_labels.get(k) == v for k, v in match.items()) and all(
            e.get("operator") == "In" and pod_labels.get(e.get("key")) in (e.get("values") or [])
            for e in exprs)
        if term.get("topologyKey") == "kubernetes.io/hostname" and (exprs or match) and hits:
            return True
    return False


# === kustomize overlays ===

def workload_config(docs, workload):
    """(container, config dict, configmap) of the tailgate container of a workload."""
    pod = workload["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "tailgate")
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    mount = next(m for m in container.get("volumeMounts") or [] if m["mountPath"] == "/conf")
    cm_name = volumes[mount["name"]]["configMap"]["name"]
    cm = one(docs, "ConfigMap", cm_name)
    return container, yaml.safe_load(cm["data"]["config.yaml"]) if cm else None, cm


def check_workload(r, where, docs, workload):
    pod = workload["spec"]["template"]["spec"]
    meta = workload["spec"]["template"]["metadata"]
    container, cfg, cm = workload_config(docs, workload)
    if not r.check(cfg is not None, f"{where}: config ConfigMap exists and has config.yaml"):
        return None
    r.check(container.get("args") == ["--config=/conf/config.yaml"], f"{where}: args --config=/conf/config.yaml",
            str(container.get("args")))
    check_config_for_pod(r, where, cfg)
    check_memory_limit(r, where, cfg, container["resources"]["limits"]["memory"])
    live, ready = health_paths(cfg)
    for probe, want in (("startupProbe", live), ("livenessProbe", live), ("readinessProbe", ready)):
        get = (container.get(probe) or {}).get("httpGet") or {}
        r.check(named_port(container, get.get("port")) == HEALTH_PORT and get.get("path") == want,
                f"{where}: {probe} GET {want} on :{HEALTH_PORT}", str(get))
    declared = {p["containerPort"] for p in container.get("ports") or []}
    listens = {port_of(e) for e in config_listen_endpoints(cfg)}
    r.check(listens <= declared, f"{where}: containerPorts cover every port the config listens on",
            f"missing {sorted(listens - declared)}")
    r.check(not any("hostPort" in p for p in container.get("ports") or []), f"{where}: no hostPort")
    ann = meta.get("annotations") or {}
    r.check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(METRICS_PORT),
            f"{where}: pod scrape annotations for :{METRICS_PORT}")
    check_pod_security(r, where, pod, container)
    check_termination(r, where, cfg, pod.get("terminationGracePeriodSeconds"), container.get("lifecycle"))
    return cfg


def check_overlay(r, name, docs, configs_out):
    print(f"{name}:")
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] not in
                  ("Namespace", "ClusterRole", "ClusterRoleBinding")}
    r.check(namespaces == {"observability"}, f"{name}: every namespaced object in observability", str(namespaces))

    agent = one(docs, "DaemonSet", "agent-collector")
    gateways = find(docs, "Deployment", "gateway-collector") + find(docs, "StatefulSet", "gateway-collector")
    if not (r.check(agent, f"{name}: agent DaemonSet") and r.check(len(gateways) == 1, f"{name}: one gateway workload")):
        return
    gw = gateways[0]
    gw_labels = gw["spec"]["template"]["metadata"]["labels"]
    ns = gw["metadata"]["namespace"]

    # Headless Service: the member list of the agents' resolver.
    headless = [s for s in find(docs, "Service") if s["spec"].get("clusterIP") == "None"]
    r.check(len(headless) == 1, f"{name}: exactly one headless Service (clusterIP: None)")
    svc = headless[0] if headless else {"metadata": {"name": "?"}, "spec": {}}
    r.check(selects(svc["spec"].get("selector"), gw_labels), f"{name}: headless Service selects the gateway pods")
    svc_ports = {p["port"] for p in svc["spec"].get("ports") or []}
    r.check(4317 in svc_ports, f"{name}: headless Service has port 4317")

    gw_cfg = check_workload(r, f"{name} gateway", docs, gw)
    agent_cfg = check_workload(r, f"{name} agent", docs, agent)
    if gw_cfg is None or agent_cfg is None:
        return
    configs_out[f"{name}-gateway"] = gw_cfg
    configs_out[f"{name}-agent"] = agent_cfg

    # Resolver <-> Service.
    lb = lb_exporter(agent_cfg)
    resolver = (lb or {}).get("resolver") or {}
    svc_name = svc["metadata"]["name"]
    if "dns" in resolver:
        dns = resolver["dns"]
        want = f"{svc_name}.{ns}.svc.cluster.local"
        r.check(dns.get("hostname") == want, f"{name}: dns resolver hostname is {want}", str(dns.get("hostname")))
        r.check(dns.get("port", 4317) in svc_ports, f"{name}: dns resolver port is a Service port")
    elif "k8s" in resolver:
        k8s = resolver["k8s"]
        r.check(k8s.get("service") == f"{svc_name}.{ns}", f"{name}: k8s resolver service is {svc_name}.{ns}",
                str(k8s.get("service")))
        r.check(set(k8s.get("ports") or [4317]) <= svc_ports, f"{name}: k8s resolver ports are Service ports")
        r.check(k8s.get("return_hostnames") is True, f"{name}: k8s resolver return_hostnames: true")
        r.check(gw["kind"] == "StatefulSet" and gw["spec"].get("serviceName") == svc_name,
                f"{name}: hostnames come from a StatefulSet governed by {svc_name}")
    else:
        r.check(False, f"{name}: agent uses the dns or k8s resolver", str(resolver))

    check_rbac(r, name, docs, agent, "k8s" in resolver, ns)
    if "dns" in resolver:
        check_membership(r, name, docs, gw, gw_cfg, resolver)
    else:
        # Host-name members (k8s resolver, return_hostnames) cannot pass the membership gate yet.
        r.check(membership(gw_cfg) is None and not find(docs, "HorizontalPodAutoscaler"),
                f"{name}: without dns, no gateway membership and no HPA")

    # Availability of the gateway tier.
    pdbs = [p for p in find(docs, "PodDisruptionBudget")
            if selects(p["spec"]["selector"].get("matchLabels"), gw_labels)]
    r.check(len(pdbs) == 1 and pdbs[0]["spec"].get("maxUnavailable") == 1,
            f"{name}: PodDisruptionBudget maxUnavailable 1 on the gateways")
    r.check(gw["spec"].get("replicas", 1) >= 3, f"{name}: at least 3 gateway replicas (PDB leaves room for one)")
    r.check(anti_affinity_ok(gw["spec"]["template"]["spec"].get("affinity"), gw_labels),
            f"{name}: required pod anti-affinity on kubernetes.io/hostname")

    # Spanmetrics scrape target.
    prom = [e for k, e in (gw_cfg.get("exporters") or {}).items() if k.split("/")[0] == "prometheus"]
    if prom:
        port = port_of(prom[0]["endpoint"])
        scraped = [s for s in find(docs, "Service")
                   if selects(s["spec"].get("selector"), gw_labels)
                   and (s["metadata"].get("annotations") or {}).get("prometheus.io/port") == str(port)
                   and (s["metadata"].get("annotations") or {}).get("prometheus.io/scrape") == "true"]
        r.check(scraped, f"{name}: a Service annotates the spanmetrics port :{port} for scraping")

    # Agent entry point for applications.
    agent_labels = agent["spec"]["template"]["metadata"]["labels"]
    entry = [s for s in find(docs, "Service") if selects(s["spec"].get("selector"), agent_labels)]
    r.check(len(entry) == 1 and entry[0]["spec"].get("internalTrafficPolicy") == "Local",
            f"{name}: node-local agent Service (internalTrafficPolicy: Local)")


def check_membership(r, name, docs, gw, gw_cfg, agent_resolver):
    """Gateway membership: resolved exactly as agents resolve the gateways, `self` from an env var the
    pod defines, and an HPA whose scale-down lets one drain end before the next begins."""
    m = membership(gw_cfg)
    if not r.check(m is not None, f"{name}: gateway tail_sampling sets tailgate.membership"):
        return
    r.check(m.get("resolver") == agent_resolver, f"{name}: membership resolver is the agents' resolver",
            f"{m.get('resolver')} vs {agent_resolver}")
    container = next(c for c in gw["spec"]["template"]["spec"]["containers"] if c["name"] == "tailgate")
    env = {e["name"] for e in container.get("env") or []}
    refs = set(re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}", str(m.get("self", ""))))
    r.check(refs and refs <= env, f"{name}: membership.self reads env vars the gateway pod defines",
            f"self={m.get('self')!r}, env={sorted(env)}")
    hpas = [h for h in find(docs, "HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"].get("name") == gw["metadata"]["name"]
            and h["spec"]["scaleTargetRef"].get("kind") == gw["kind"]]
    if not r.check(len(hpas) == 1, f"{name}: a HorizontalPodAutoscaler scales the gateway {gw['kind']}"):
        return
    down = ((hpas[0]["spec"].get("behavior") or {}).get("scaleDown") or {})
    policies = down.get("policies") or []
    need = membership_grace(gw_cfg) + 15
    slow = policies and all(p.get("type") == "Pods" and p.get("value") == 1 and p.get("periodSeconds", 0) >= need
                            for p in policies)
    r.check(slow, f"{name}: HPA scales down one gateway per >= grace + 15 s ({need:g} s)", str(policies))


def check_rbac(r, name, docs, agent, uses_k8s, ns):
    roles = find(docs, "Role") + find(docs, "ClusterRole")
    bindings = find(docs, "RoleBinding") + find(docs, "ClusterRoleBinding")
    sa_name = agent["spec"]["template"]["spec"].get("serviceAccountName")
    sa = one(docs, "ServiceAccount", sa_name)
    pod_automount = agent["spec"]["template"]["spec"].get("automountServiceAccountToken")
    if not uses_k8s:
        r.check(not roles and not bindings, f"{name}: dns resolver needs no RBAC, none granted")
        r.check(pod_automount is False, f"{name}: agent mounts no API token")
        return
    r.check(not find(docs, "ClusterRole") and not find(docs, "ClusterRoleBinding"),
            f"{name}: no cluster-wide RBAC")
    rules = [rule for role in roles for rule in role.get("rules") or []]
    only_slices = all(rule.get("apiGroups") == ["discovery.k8s.io"] and rule.get("resources") == ["endpointslices"]
                      and set(rule.get("verbs") or []) <= RESOLVER_VERBS for rule in rules)
    r.check(rules and only_slices, f"{name}: RBAC grants only get/list/watch on discovery.k8s.io endpointslices",
            str(rules))
    verbs = {v for rule in rules for v in rule.get("verbs") or []}
    r.check({"list", "watch"} <= verbs, f"{name}: RBAC grants list and watch (what the watcher needs)")
    r.check(all(role["metadata"].get("namespace") == ns for role in find(docs, "Role")),
            f"{name}: Role lives in the gateway namespace {ns}")
    bound = [b for b in bindings if any(s.get("kind") == "ServiceAccount" and s.get("name") == sa_name
                                        and s.get("namespace", b["metadata"].get("namespace")) == ns
                                        for s in b.get("subjects") or [])
             and any(b["roleRef"]["name"] == role["metadata"]["name"] for role in roles)]
    r.check(bound and len(bindings) == len(bound), f"{name}: the only binding is the agent's ServiceAccount")
    r.check(sa is not None and sa.get("automountServiceAccountToken") is not False and pod_automount is not False,
            f"{name}: agent mounts its API token")


# === seccomp ===

def check_seccomp(r, deploy, docs):
    print("seccomp:")
    path = deploy / "seccomp" / "tailgate-io-uring.json"
    profile = json.loads(path.read_text())
    allowed = {n for s in profile["syscalls"] if s.get("action") == "SCMP_ACT_ALLOW" and not s.get("args")
               for n in s["names"]}
    r.check(IO_URING <= allowed, "profile allows io_uring_setup, io_uring_enter, io_uring_register",
            f"missing {sorted(IO_URING - allowed)}")
    r.check(profile.get("defaultAction") in ("SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS"),
            "profile denies by default (an allow-list on top of the runtime default)")
    dangerous = {"mount", "umount2", "unshare", "setns", "bpf", "perf_event_open", "ptrace", "kexec_load",
                 "init_module", "finit_module", "add_key", "keyctl", "request_key", "pivot_root", "reboot"}
    r.check(not (allowed & dangerous), "profile keeps the runtime default's denials", str(sorted(allowed & dangerous)))
    cm = [d for d in find(docs, "ConfigMap") if "io-uring.json" in (d.get("data") or {})]
    r.check(len(cm) == 1 and json.loads(cm[0]["data"]["io-uring.json"]) == profile,
            "installer ConfigMap carries the same profile")
    ds = find(docs, "DaemonSet")
    pod = ds[0]["spec"]["template"]["spec"] if ds else {}
    host = [v["hostPath"]["path"] for v in pod.get("volumes") or [] if "hostPath" in v]
    script = " ".join(" ".join(c.get("command") or []) for c in pod.get("initContainers") or [])
    directory, file = SECCOMP_PROFILE.rsplit("/", 1)
    r.check(host == [f"/var/lib/kubelet/seccomp/{directory}"] and f"/{file}" in script,
            f"installer writes /var/lib/kubelet/seccomp/{SECCOMP_PROFILE}", f"{host} {script}")
    r.check(any(t.get("operator") == "Exists" for t in pod.get("tolerations") or []),
            "installer runs on every node (tolerates all taints)")


# === drop-in examples (Operator, Helm) ===

OPERATOR_SPEC_KEYS = {
    # OpenTelemetryCollectorSpec (opentelemetry.io/v1beta1), with its inline common and StatefulSet fields.
    "managementState", "resources", "nodeSelector", "args", "replicas", "podDisruptionBudget",
    "securityContext", "podSecurityContext", "podAnnotations", "serviceAccount", "image", "imagePullPolicy",
    "volumeMounts", "ports", "env", "envFrom", "tolerations", "volumes", "affinity", "lifecycle",
    "terminationGracePeriodSeconds", "topologySpreadConstraints", "hostNetwork", "dnsPolicy", "hostPID",
    "shareProcessNamespace", "priorityClassName", "initContainers", "additionalContainers", "podDnsConfig",
    "ipFamilies", "ipFamilyPolicy", "trafficDistribution", "sessionAffinity", "sessionAffinityConfig",
    "hostUsers", "hostAliases", "volumeClaimTemplates", "persistentVolumeClaimRetentionPolicy", "serviceName",
    "podManagementPolicy", "autoscaler", "targetAllocator", "mode", "upgradeStrategy", "config",
    "configVersions", "ingress", "httpRoute", "networkPolicy", "livenessProbe", "readinessProbe",
    "startupProbe", "observability", "configmaps", "daemonSetUpdateStrategy", "deploymentUpdateStrategy",
    "command",
}
HELM_TOP_KEYS = {
    # Top-level keys of the opentelemetry-collector chart's values.schema.json (chart 0.170).
    "additionalLabels", "affinity", "alternateConfig", "annotations", "apiVersion", "autoscaling",
    "clusterRole", "command", "config", "configMap", "dnsConfig", "dnsPolicy", "enableConfigChecksumAnnotation",
    "enabled", "extraContainers", "extraEnvs", "extraEnvsFrom", "extraManifests", "extraVolumeMounts",
    "extraVolumes", "fullnameOverride", "global", "hostAliases", "hostNetwork", "hostPID", "httproute", "image",
    "imagePullSecrets", "ingress", "initContainers", "internalTelemetryViaOTLP", "lifecycleHooks",
    "livenessProbe", "mode", "nameOverride", "namespaceOverride", "networkPolicy", "nodeSelector",
    "podAnnotations", "podDisruptionBudget", "podLabels", "podMonitor", "podSecurityContext", "ports",
    "presets", "priorityClassName", "prometheusRule", "readinessProbe", "replicaCount", "resizePolicy",
    "resources", "revisionHistoryLimit", "rewriteDeprecatedComponentNames", "rollout", "runtimeClassName",
    "schedulerName", "securityContext", "service", "serviceAccount", "serviceMonitor", "shareProcessNamespace",
    "startupProbe", "statefulset", "terminationGracePeriodSeconds", "tolerations", "topologySpreadConstraints",
    "useGOMEMLIMIT",
}
HELM_SUBKEYS = {
    "command": {"name", "extraArgs"},
    "image": {"registry", "repository", "tag", "digest", "pullPolicy"},
    "service": {"enabled", "type", "clusterIP", "trafficDistribution", "loadBalancerIP", "loadBalancerSourceRanges",
                "externalTrafficPolicy", "internalTrafficPolicy", "annotations"},
    "lifecycleHooks": {"postStart", "preStop"},
    "readinessProbe": {"initialDelaySeconds", "periodSeconds", "timeoutSeconds", "successThreshold",
                       "failureThreshold", "httpGet"},
    "livenessProbe": {"initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold",
                      "terminationGracePeriodSeconds", "httpGet"},
}
HELM_PORT_KEYS = {"enabled", "containerPort", "servicePort", "hostPort", "nodePort", "protocol", "appProtocol"}


def check_operator(r, deploy, configs_out):
    print("dropin/operator:")
    crs = {}
    for path in sorted((deploy / "dropin" / "operator").glob("*.yaml")):
        for cr in load_docs(path):
            where = f"operator {path.name}"
            r.check(cr.get("apiVersion") == "opentelemetry.io/v1beta1" and cr.get("kind") == "OpenTelemetryCollector",
                    f"{where}: OpenTelemetryCollector opentelemetry.io/v1beta1")
            spec = cr.get("spec") or {}
            r.check(set(spec) <= OPERATOR_SPEC_KEYS, f"{where}: spec fields exist in v1beta1",
                    str(sorted(set(spec) - OPERATOR_SPEC_KEYS)))
            r.check(spec.get("mode") in ("daemonset", "deployment", "statefulset", "sidecar"), f"{where}: mode")
            r.check("tailgate" in str(spec.get("image")), f"{where}: uses the tailgate image")
            r.check(spec.get("upgradeStrategy") == "none", f"{where}: upgradeStrategy none")
            r.check(all(isinstance(v, str) for v in (spec.get("args") or {}).values()), f"{where}: args are strings")
            cfg = spec.get("config") or {}
            r.check((cfg.get("service") or {}).get("pipelines"), f"{where}: config has pipelines")
            check_config_for_pod(r, where, cfg)
            check_memory_limit(r, where, cfg, spec["resources"]["limits"]["memory"])
            check_termination(r, where, cfg, spec.get("terminationGracePeriodSeconds"), spec.get("lifecycle"))
            check_pod_security(r, where, {"securityContext": spec.get("podSecurityContext")},
                               {"securityContext": spec.get("securityContext")})
            crs[cr["metadata"]["name"]] = cr
            configs_out[f"operator-{cr['metadata']['name']}"] = cfg
    gw = crs.get("gateway")
    agent = crs.get("agent")
    if r.check(gw and agent, "operator: a gateway and an agent resource"):
        pdb = (gw["spec"].get("podDisruptionBudget") or {}).get("minAvailable")
        r.check(pdb == 2, "operator gateway: podDisruptionBudget minAvailable 2")
        labels = {"app.kubernetes.io/instance": f"{gw['metadata']['namespace']}.{gw['metadata']['name']}"}
        r.check(anti_affinity_ok(gw["spec"].get("affinity"), labels),
                "operator gateway: required anti-affinity on the Operator's instance label")
        # The Operator names the headless Service <name>-collector-headless and makes it the
        # StatefulSet's serviceName.
        want = f"{gw['metadata']['name']}-collector-headless.{gw['metadata']['namespace']}.svc.cluster.local"
        dns = ((lb_exporter(agent["spec"]["config"]) or {}).get("resolver") or {}).get("dns") or {}
        r.check(dns.get("hostname") == want, f"operator agent: resolver hostname is {want}", str(dns.get("hostname")))


def check_helm(r, deploy, configs_out):
    print("dropin/helm:")
    values = {}
    for path in sorted((deploy / "dropin" / "helm").glob("*-values.yaml")):
        v = yaml.safe_load(path.read_text())
        where = f"helm {path.name}"
        r.check(set(v) <= HELM_TOP_KEYS, f"{where}: top-level keys exist in the chart", str(sorted(set(v) - HELM_TOP_KEYS)))
        for key, allowed in HELM_SUBKEYS.items():
            r.check(set(v.get(key) or {}) <= allowed, f"{where}: {key}.* keys exist in the chart",
                    str(sorted(set(v.get(key) or {}) - allowed)))
        bad_ports = {n: sorted(set(p) - HELM_PORT_KEYS) for n, p in (v.get("ports") or {}).items()
                     if set(p) - HELM_PORT_KEYS or "enabled" not in p}
        r.check(not bad_ports, f"{where}: ports.* entries match the chart's schema", str(bad_ports))
        r.check(v.get("mode") in ("daemonset", "deployment", "statefulset"), f"{where}: mode")
        r.check((v.get("command") or {}).get("name") == "tailgate", f"{where}: command.name tailgate (-> /tailgate)")
        r.check(str((v.get("image") or {}).get("repository", "")).endswith("tailgate"), f"{where}: tailgate image")
        r.check("alternateConfig" in v and "config" not in v,
                f"{where}: alternateConfig (not merged with the chart's collector defaults)")
        r.check(v.get("useGOMEMLIMIT") is False, f"{where}: useGOMEMLIMIT off (a Go runtime knob)")
        enabled = {p.get("containerPort") for p in (v.get("ports") or {}).values() if p.get("enabled")}
        cfg = v.get("alternateConfig") or {}
        listens = {port_of(e) for e in config_listen_endpoints(cfg)} - {HEALTH_PORT}
        r.check(listens <= enabled, f"{where}: enabled ports cover the config's listeners",
                str(sorted(listens - enabled)))
        r.check(enabled <= listens, f"{where}: no port enabled that tailgate does not listen on",
                str(sorted(enabled - listens)))
        check_config_for_pod(r, where, cfg)
        # The chart's probes are GET / on :13133 unless the values say otherwise.
        live, ready = health_paths(cfg)
        for probe, want in (("livenessProbe", live), ("readinessProbe", ready)):
            get = {"port": HEALTH_PORT, "path": "/", **((v.get(probe) or {}).get("httpGet") or {})}
            r.check(get["port"] == HEALTH_PORT and get["path"] == want,
                    f"{where}: {probe} GET {want} on :{HEALTH_PORT}", str(get))
        check_memory_limit(r, where, cfg, v["resources"]["limits"]["memory"])
        check_termination(r, where, cfg, v.get("terminationGracePeriodSeconds"), v.get("lifecycleHooks"))
        check_pod_security(r, where, {"securityContext": v.get("podSecurityContext")},
                           {"securityContext": v.get("securityContext")})
        values[path.name.split("-")[0]] = v
        configs_out[f"helm-{path.name.split('-')[0]}"] = cfg
    gw, agent = values.get("gateway"), values.get("agent")
    if r.check(gw and agent, "helm: gateway and agent values"):
        r.check((gw.get("service") or {}).get("clusterIP") == "None", "helm gateway: Service is headless")
        r.check((gw.get("podDisruptionBudget") or {}).get("minAvailable") == 2, "helm gateway: PDB minAvailable 2")
        r.check(anti_affinity_ok(gw.get("affinity"), {"app.kubernetes.io/instance": "gateway"}),
                "helm gateway: required anti-affinity on the release's instance label")
        want = f"{gw['fullnameOverride']}.observability.svc.cluster.local"
        dns = ((lb_exporter(agent["alternateConfig"]) or {}).get("resolver") or {}).get("dns") or {}
        r.check(dns.get("hostname") == want, f"helm agent: resolver hostname is {want}", str(dns.get("hostname")))


# === deploy/local and the reference configs ===

def check_local(r, deploy, configs_out):
    print("local:")
    gw = yaml.safe_load((deploy / "local" / "gateway.yaml").read_text())
    agent = yaml.safe_load((deploy / "local" / "agent.yaml").read_text())
    for name, cfg in (("gateway", gw), ("agent", agent)):
        off = [e for e in config_listen_endpoints(cfg) if host_of(e) != "127.0.0.1"]
        r.check(not off, f"local {name}: listens on 127.0.0.1 only", str(off))
        r.check("health_check" in ((cfg.get("service") or {}).get("extensions") or []),
                f"local {name}: health_check enabled (run-local.sh waits on it)")
        configs_out[f"local-{name}"] = cfg
    static = ((lb_exporter(agent) or {}).get("resolver") or {}).get("static") or {}
    grpc = gw["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    r.check(static.get("hostnames") == [f"127.0.0.1:{port_of(grpc) + i}" for i in range(3)],
            "local agent: static resolver lists gateways 0..2 in ordinal order", str(static.get("hostnames")))


def check_dockerfile(r, deploy):
    """What the manifests and the drop-ins rely on from the image (the build itself needs a daemon)."""
    print("Dockerfile:")
    text = (deploy / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    r.check(len(stages) >= 2, "multi-stage build", str(stages))
    r.check(re.search(r"^USER\s+(65532|nonroot)", text, re.M), "runtime stage runs as non-root 65532")
    r.check('ENTRYPOINT ["/tailgate"]' in text, "entrypoint /tailgate (Helm command.name: tailgate runs /tailgate)")
    r.check('CMD ["--config=/conf/config.yaml"]' in text, "default args --config=/conf/config.yaml")
    exposed = {int(p) for line in re.findall(r"^EXPOSE\s+(.*)$", text, re.M) for p in line.split()}
    want = {4317, 4318, METRICS_PORT, SPANMETRICS_PORT, HEALTH_PORT}
    r.check(exposed == want, f"exposes {sorted(want)}", str(sorted(exposed)))


def strip_pod_additions(cfg):
    """The pod config minus what the deploy adds, to compare with the reference config."""
    cfg = json.loads(json.dumps(cfg))
    cfg.pop("extensions", None)
    cfg["service"].pop("extensions", None)
    cfg["service"].pop("telemetry", None)
    # The agent → gateway hop uses zstd on purpose (docs/perf.md codec table); the seed has gzip's default.
    lb = (cfg.get("exporters") or {}).get("loadbalancing")
    if lb:
        otlp = (lb.get("protocol") or {}).get("otlp") or {}
        if otlp.get("compression") == "zstd":
            otlp.pop("compression")
    ts = (cfg.get("processors") or {}).get("tail_sampling")
    if ts:
        ts.pop("sampled_cache_size", None)
        ts.pop("non_sampled_cache_size", None)
        ts.pop("tailgate", None)
    return cfg


def check_reference(r, deploy, reference):
    print("reference:")
    pairs = (("k8s/base/config/agent.yaml", "agent-config.yaml"),
             ("k8s/base/config/gateway.yaml", "gateway-spanmetrics-config.yaml"))
    for ours, theirs in pairs:
        ref = reference / theirs
        if not ref.exists():
            print(f"  skip  {ours} vs {theirs}: {ref} not found")
            continue
        a = strip_pod_additions(yaml.safe_load((deploy / ours).read_text()))
        b = strip_pod_additions(yaml.safe_load(ref.read_text()))
        r.check(a == b, f"{ours} is {theirs} plus health_check, telemetry address, decision caches, membership and zstd to gateways")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--deploy", required=True, type=pathlib.Path)
    ap.add_argument("--rendered", required=True, type=pathlib.Path)
    ap.add_argument("--configs-out", required=True, type=pathlib.Path)
    ap.add_argument("--reference", type=pathlib.Path)
    args = ap.parse_args()

    r = Report()
    configs = {}
    overlays = sorted(args.rendered.glob("k8s-*.yaml"))
    r.check(overlays, "rendered kustomize output found")
    for path in overlays:
        check_overlay(r, path.stem, load_docs(path), configs)
    check_seccomp(r, args.deploy, load_docs(args.rendered / "seccomp.yaml"))
    check_operator(r, args.deploy, configs)
    check_helm(r, args.deploy, configs)
    check_local(r, args.deploy, configs)
    check_dockerfile(r, args.deploy)
    if args.reference:
        check_reference(r, args.deploy, args.reference)

    args.configs_out.mkdir(parents=True, exist_ok=True)
    for name, cfg in sorted(configs.items()):
        (args.configs_out / f"{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    print(f"invariants: {r.passed} passed, {r.failed} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
