package web

import (
	"net"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// proxies is the set of reverse proxies whose X-Forwarded-For is believed.
type proxies []*net.IPNet

// parseProxies reads addresses and CIDR ranges; config.Validate has
// already refused malformed ones, which are skipped here.
func parseProxies(list []string) proxies {
	var out proxies
	for _, p := range list {
		p = strings.TrimSpace(p)
		if _, n, err := net.ParseCIDR(p); err == nil {
			out = append(out, n)
			continue
		}
		if ip := net.ParseIP(p); ip != nil {
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
		}
	}
	return out
}

func (ps proxies) trusts(ip net.IP) bool {
	for _, n := range ps {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// clientIP is the address a request comes from, for per-address limits:
// the peer's address, or, when the peer is a trusted proxy, the rightmost
// address of X-Forwarded-For that is not a trusted proxy itself. (The
// leftmost entries are whatever the client chose to send, so they are
// never believed.)
func (s *Server) clientIP(c *fiber.Ctx) string {
	return clientAddr(s.proxies, c.Context().RemoteIP(), c.Get(fiber.HeaderXForwardedFor))
}

func clientAddr(ps proxies, peer net.IP, forwarded string) string {
	if len(ps) == 0 || !ps.trusts(peer) || forwarded == "" {
		return peer.String()
	}
	hops := strings.Split(forwarded, ",")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		ip := net.ParseIP(strings.TrimSpace(hops[i]))
		if ip == nil {
			break // a garbled hop: trust nothing further left
		}
		client = ip
		if !ps.trusts(ip) {
			break
		}
	}
	return client.String()
}
