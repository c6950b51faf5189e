module github.com/ovs-agent/ovs-agent

go 1.26.8
