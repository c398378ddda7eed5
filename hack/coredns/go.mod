// Wrapper module: a small CoreDNS for the devstack's cluster DNS, with only the plugins it needs
// (CoreDNS's own main imports every plugin: clouds, etcd, ...; this one builds in a fraction).
module devstack/coredns

go 1.26.0

require github.com/coredns/coredns v1.15.0
