// Command vcsim runs VMware's vCenter simulator (govmomi's simulator package, Debian's govmomi 0.24)
// for drplan's pyvmomi tests.
//
// It serves HTTPS with the given certificate, requires the given user and password (from the
// environment, never from the command line), renames the first VMs to the requested names, adds the
// requested distributed port groups, prints one JSON line {"url", "host", "port", "vms": [every VM name]} and runs until
// SIGINT or SIGTERM.
//
// Build: GOPATH=/usr/share/gocode GO111MODULE=off go build -o vcsim main.go
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
	vms := flag.Int("vms", 4, "total number of VMs (spread over the standalone host's and the cluster's pools)")
	names := flag.String("names", "", "comma-separated names given to the first VMs")
	portgroups := flag.String("portgroups", "", "comma-separated distributed port groups to add")
	certFile := flag.String("cert", "", "PEM server certificate (required)")
	keyFile := flag.String("key", "", "PEM server key (required)")
	user := flag.String("user", "drplan@vsphere.local", "the only user accepted")
	passEnv := flag.String("password-env", "VCSIM_PASSWORD", "environment variable holding the password")
	flag.Parse()

	password := os.Getenv(*passEnv)
	if *certFile == "" || *keyFile == "" || password == "" {
		log.Fatalf("vcsim: -cert, -key and $%s are required", *passEnv)
	}
	wanted := split(*names)
	if len(wanted) > *vms {
		*vms = len(wanted)
	}

	kp, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatalf("vcsim: loading the certificate: %s", err)
	}

	model := simulator.VPX()
	model.Autostart = false        // VMs start powered off; tests power them on
	model.Machine = (*vms + 1) / 2 // per resource pool: the standalone host's and the cluster's
	defer model.Remove()
	fail := func(format string, args ...interface{}) {
		model.Remove() // log.Fatalf skips deferred calls: remove the datastore dirs first
		log.Fatalf(format, args...)
	}
	if err = model.Create(); err != nil {
		fail("vcsim: creating the inventory: %s", err)
	}
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, password)}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{kp}}
	s := model.Service.NewServer()
	defer s.Close()

	ctx := context.Background()
	c, err := govmomi.NewClient(ctx, s.URL, true) // in-process setup only
	if err != nil {
		fail("vcsim: self-connect: %s", err)
	}
	finder := find.NewFinder(c.Client, false)
	dc, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		fail("vcsim: %s", err)
	}
	finder.SetDatacenter(dc)

	all, err := finder.VirtualMachineList(ctx, "*")
	if err != nil {
		fail("vcsim: listing VMs: %s", err)
	}
	for i, name := range wanted {
		task, err := all[i].Rename(ctx, name)
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			fail("vcsim: renaming %s to %s: %s", all[i].Name(), name, err)
		}
	}

	if pgs := split(*portgroups); len(pgs) > 0 {
		net, err := finder.Network(ctx, "DVS0")
		if err != nil {
			fail("vcsim: finding the distributed switch: %s", err)
		}
		dvs := net.(*object.DistributedVirtualSwitch)
		var specs []types.DVPortgroupConfigSpec
		for _, pg := range pgs {
			specs = append(specs, types.DVPortgroupConfigSpec{Name: pg, Type: string(types.DistributedVirtualPortgroupPortgroupTypeEarlyBinding)})
		}
		task, err := dvs.AddPortgroup(ctx, specs)
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			fail("vcsim: adding port groups: %s", err)
		}
	}
	_ = c.Logout(ctx)

	u := *s.URL
	u.User = nil // never print the password
	vmNames := make([]string, 0, len(all))
	for i, vm := range all {
		if i < len(wanted) {
			vmNames = append(vmNames, wanted[i])
		} else {
			vmNames = append(vmNames, vm.Name())
		}
	}
	out, _ := json.Marshal(map[string]interface{}{"url": u.String(), "host": u.Hostname(), "port": u.Port(), "vms": vmNames})
	fmt.Println(string(out))
	os.Stdout.Sync()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
