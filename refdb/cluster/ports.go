package cluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
)

// DefaultPortBase gives the ports of DESIGN.md §3 (3406, 3407, 3480).
const DefaultPortBase = 3400

// MaxReaders is Aurora's limit of read replicas.
const MaxReaders = 15

// Ports is the port scheme of a cluster: every port is PortBase + a fixed offset, so
// --port-base shifts them all and a cluster occupies [base, base+100).
//
//	base+6            writer endpoint           (3406)
//	base+7            reader endpoint           (3407)
//	base+11 .. +20    instance i MySQL, i=0..9  (3411..; db1 is i=0)
//	base+21 .. +26    storage s1..s6            (3421..3426)
//	base+30 .. +35    instance i MySQL, i=10..15
//	base+50 .. +65    instance i admin HTTP     (3450..)
//	base+80           control admin HTTP        (3480)
type Ports struct{ Base int }

// The range of PortBase: out of the privileged ports, and room for the cluster's 100 below 65536.
const (
	MinPortBase = 1024
	MaxPortBase = 65400
)

func (p Ports) WriterEndpoint() string { return addr(p.Base + 6) }
func (p Ports) ReaderEndpoint() string { return addr(p.Base + 7) }
func (p Ports) Control() string        { return addr(p.Base + 80) }
func (p Ports) Storage(i int) string   { return addr(p.Base + 21 + i) }

// InstanceMySQL is the MySQL address of instance i (0-based; dbN is i=N-1).
func (p Ports) InstanceMySQL(i int) string {
	if i < 10 {
		return addr(p.Base + 11 + i)
	}
	return addr(p.Base + 30 + i - 10)
}

// InstanceAdmin is the admin HTTP address of instance i.
func (p Ports) InstanceAdmin(i int) string { return addr(p.Base + 50 + i) }

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// ErrPortInUse is returned when a port of the scheme is taken.
var ErrPortInUse = errors.New("port in use")

// check verifies that every port the cluster needs is free: the listed names with addresses.
func checkFree(ports map[string]string) error {
	for name, a := range ports {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("%w: %s (%s) is not free; pick another --port-base or stop what listens there", ErrPortInUse, a, name)
		}
		ln.Close()
	}
	return nil
}

// portsOf lists the addresses a cluster with n instances uses.
func (p Ports) portsOf(instances int) map[string]string {
	m := map[string]string{"writer endpoint": p.WriterEndpoint(), "reader endpoint": p.ReaderEndpoint(), "control admin": p.Control()}
	for i := 0; i < 6; i++ {
		m[fmt.Sprintf("storage s%d", i+1)] = p.Storage(i)
	}
	for i := 0; i < instances; i++ {
		m[fmt.Sprintf("db%d mysql", i+1)] = p.InstanceMySQL(i)
		m[fmt.Sprintf("db%d admin", i+1)] = p.InstanceAdmin(i)
	}
	return m
}

// FreePortBase finds a base in [10000, 32700) whose whole block is free now, for tests and
// embedded clusters that must not collide with a default cluster. The range stays below
// Linux's ephemeral ports (32768 and up): a client connection's local port could otherwise
// take a port of the block between this check and a restart of the process that owns it.
func FreePortBase() (int, error) {
	for try := 0; try < 50; try++ {
		base := 10000 + 100*rand.IntN(227)
		if checkFree(Ports{base}.portsOf(MaxReaders+1)) == nil {
			return base, nil
		}
	}
	return 0, fmt.Errorf("%w: no free block of 100 ports found", ErrPortInUse)
}
