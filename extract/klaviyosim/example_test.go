package klaviyosim_test

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/klaviyo-etl/klaviyo-etl/extract/klaviyosim"
)

func ExampleNewServer() {
	sim, err := klaviyosim.NewServer(klaviyosim.Config{Profiles: 250, Seed: 1})
	if err != nil {
		panic(err)
	}
	defer sim.Close()

	next := sim.URL() + "/api/profiles?sort=created&page%5Bsize%5D=100"
	total := 0
	for next != "" {
		req, _ := http.NewRequest(http.MethodGet, next, nil)
		req.Header.Set("Authorization", "Klaviyo-API-Key pk_test")
		req.Header.Set("revision", "2026-07-15")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		var page struct {
			Data  []json.RawMessage
			Links struct{ Next string }
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			panic(err)
		}
		total += len(page.Data)
		next = page.Links.Next
	}
	fmt.Println(total, "profiles,", sim.Counters().Requests, "requests")
	// Output: 250 profiles, 3 requests
}
