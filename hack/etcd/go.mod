// Wrapper module: builds etcd from the Go module proxy (Debian's etcd 3.4 is too old).
module devstack/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 v3.6.16
