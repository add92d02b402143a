package klaviyosim

import (
	"hash/fnv"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// pageQuery is a validated request.
type pageQuery struct {
	rev    revision
	sort   sortField
	desc   bool
	filter *filterSpec
	size   int
	cursor *cursor
	spec   *renderSpec
	values url.Values // as received, to build links
}

var knownParams = []string{
	"filter", "sort", "page[size]", "page[cursor]", "fields[profile]", "additional-fields[profile]", "include",
	"fields[push-token]", "fields[conversation]", "fields[list]", "fields[segment]",
}

func parseQueryString(raw string) (url.Values, *apiError) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, invalidParam("", "Malformed query string: "+err.Error())
	}
	return v, nil
}

func wantsPredictive(v url.Values) bool {
	for _, s := range v["additional-fields[profile]"] {
		if slices.Contains(strings.Split(s, ","), "predictive_analytics") {
			return true
		}
	}
	return false
}

func (s *Server) parseQuery(v url.Values, rev revision, base string) (*pageQuery, *apiError) {
	q := &pageQuery{rev: rev, size: 20, values: v, filter: &filterSpec{created: allTime(), updated: allTime()}}
	for k, vs := range v {
		if !slices.Contains(knownParams, k) {
			return nil, invalidParam(k, "'"+k+"' is not a valid query parameter for this endpoint")
		}
		if len(vs) > 1 {
			return nil, invalidParam(k, "Query parameter '"+k+"' was given more than once")
		}
	}
	list := func(name string) ([]string, *apiError) {
		raw, ok := v[name]
		if !ok {
			return nil, nil
		}
		items := strings.Split(raw[0], ",")
		for _, it := range items {
			if it == "" {
				return nil, invalidParam(name, "'"+name+"' has an empty item: use a comma-separated list without spaces")
			}
		}
		return items, nil
	}

	if sv, ok := v["sort"]; ok {
		name := sv[0]
		q.desc = strings.HasPrefix(name, "-")
		name = strings.TrimPrefix(name, "-")
		switch name {
		case "id":
			q.sort = sortID
		case "created":
			q.sort = sortCreated
		case "updated":
			q.sort = sortUpdated
		case "email":
			q.sort = sortEmail
		case "subscriptions.email.marketing.suppression.timestamp", "subscriptions.email.marketing.list_suppressions.timestamp":
			return nil, invalidParam("sort", "Sorting by '"+name+"' is not implemented by klaviyosim")
		default:
			return nil, invalidParam("sort", "'"+sv[0]+"' is not a valid sort field: use id, created, updated or email, with '-' for descending")
		}
	}
	if sv, ok := v["page[size]"]; ok {
		n, err := strconv.Atoi(sv[0])
		if err != nil || n < 1 || n > 100 {
			return nil, invalidParam("page[size]", "page[size] must be an integer between 1 and 100, got '"+sv[0]+"'")
		}
		q.size = n
	}
	if fv, ok := v["filter"]; ok {
		exprs, err := parseFilter(fv[0])
		if err == nil {
			q.filter, err = compileFilter(exprs)
		}
		if err != nil {
			return nil, invalidParam("filter", "Invalid filter provided: "+err.Error())
		}
	}
	fields, e := list("fields[profile]")
	if e != nil {
		return nil, e
	}
	additional, e := list("additional-fields[profile]")
	if e != nil {
		return nil, e
	}
	include, e := list("include")
	if e != nil {
		return nil, e
	}
	if q.spec, e = compileRender(rev, base, fields, additional, include); e != nil {
		return nil, e
	}
	if cv, ok := v["page[cursor]"]; ok {
		c, err := s.codec.decode(cv[0])
		switch {
		case err != nil:
			return nil, invalidParam("page[cursor]", "Invalid page cursor: the cursor is malformed, was tampered with, or comes from another server")
		case c.field != q.sort || c.desc != q.desc:
			return nil, invalidParam("page[cursor]", "Invalid page cursor: it was issued for sort="+sortParam(c)+", not for this request's sort")
		}
		q.cursor = &c
	}
	return q, nil
}

func sortParam(c cursor) string {
	if c.desc {
		return "-" + sortNames[c.field]
	}
	return sortNames[c.field]
}

type pageResult struct {
	recs       []record
	next, prev *cursor
}

// runQuery finds one page by keyset: the records strictly after (or, for
// a prev cursor, strictly before) the cursor's (key, id), in sort order.
func (s *Server) runQuery(q *pageQuery) pageResult {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var res pageResult
	if q.filter.empty() {
		if q.cursor != nil {
			res.prev = &cursor{field: q.sort, desc: q.desc, before: true, num: q.cursor.num, str: q.cursor.str, id: q.cursor.id}
		}
		return res
	}
	recs := s.recs
	var scratch []byte
	var seq []int32
	if q.filter.ids.on {
		// Few candidates: look them up by id and order them.
		byID := s.order(sortID)
		for _, id := range q.filter.ids.vals {
			j, ok := slices.BinarySearchFunc(byID, id, func(pos int32, id string) int { return compareIDString(&recs[pos], id) })
			if ok && !slices.Contains(seq, byID[j]) {
				seq = append(seq, byID[j])
			}
		}
		slices.SortFunc(seq, func(a, b int32) int {
			k := keyOf(&recs[b], q.sort, &scratch)
			return compareKey(&recs[a], &k, &scratch)
		})
	} else {
		seq = s.order(q.sort)
	}
	lo, hi := 0, len(seq)
	// Narrow to the filter's range when it bounds the sort key itself.
	if b := q.filter.created; q.sort == sortCreated && b.bounded() {
		lo = sort.Search(len(seq), func(j int) bool { return recs[seq[j]].created >= b.lo })
		hi = sort.Search(len(seq), func(j int) bool { return recs[seq[j]].created > b.hi })
	}
	if b := q.filter.updated; q.sort == sortUpdated && b.bounded() {
		lo = sort.Search(len(seq), func(j int) bool { return recs[seq[j]].updated >= b.lo })
		hi = sort.Search(len(seq), func(j int) bool { return recs[seq[j]].updated > b.hi })
	}
	firstAfter := func(c *cursor) int { // first j with rec > c
		return sort.Search(len(seq), func(j int) bool { return compareKey(&recs[seq[j]], c, &scratch) > 0 })
	}
	firstAtOrAfter := func(c *cursor) int {
		return sort.Search(len(seq), func(j int) bool { return compareKey(&recs[seq[j]], c, &scratch) >= 0 })
	}
	var found []int32
	collect := func(from, to, step int) {
		for j := from; (step > 0 && j < to || step < 0 && j > to) && len(found) <= q.size; j += step {
			if q.filter.match(&recs[seq[j]], &scratch) {
				found = append(found, seq[j])
			}
		}
	}
	// Walking forward in sort order means ascending positions unless desc.
	forward := func(from int) { // from: first position to consider, in walking order
		if q.desc {
			collect(min(from, hi-1), lo-1, -1)
		} else {
			collect(max(from, lo), hi, 1)
		}
	}
	backward := func(from int) {
		if q.desc {
			collect(max(from, lo), hi, 1)
		} else {
			collect(min(from, hi-1), lo-1, -1)
		}
	}
	key := func(pos int32, before bool) *cursor {
		c := keyOf(&recs[pos], q.sort, &scratch)
		c.desc, c.before = q.desc, before
		return &c
	}
	switch c := q.cursor; {
	case c == nil:
		if q.desc {
			forward(hi - 1)
		} else {
			forward(lo)
		}
	case !c.before:
		if q.desc {
			forward(firstAtOrAfter(c) - 1)
		} else {
			forward(firstAfter(c))
		}
	default:
		if q.desc {
			backward(firstAfter(c))
		} else {
			backward(firstAtOrAfter(c) - 1)
		}
		if len(found) > q.size {
			found = found[:q.size]
			res.prev = key(found[len(found)-1], true)
		}
		slices.Reverse(found)
		if len(found) > 0 {
			res.next = key(found[len(found)-1], false)
		}
	}
	if q.cursor == nil || !q.cursor.before {
		if len(found) > q.size {
			found = found[:q.size]
			res.next = key(found[len(found)-1], false)
		}
		if q.cursor != nil && len(found) > 0 {
			res.prev = key(found[0], true)
		}
	}
	res.recs = make([]record, len(found))
	for i, pos := range found {
		res.recs[i] = recs[pos]
	}
	return res
}

type renderScratch struct {
	a     arena
	p     Profile
	spans [][2]int // where each freshly rendered record lies in the page
}

var scratchPool = sync.Pool{New: func() any { return &renderScratch{a: arena{b: make([]byte, 0, 8<<10)}} }}

type includedRef struct {
	typ, id, profileID string
	created            int64
}

// renderPage writes the whole JSON:API document into b.
func (s *Server) renderPage(b []byte, q *pageQuery, res pageResult, selfBase, rawQuery string) []byte {
	w := wantProperties
	if q.spec.attrs&aProperties == 0 {
		w = 0
	}
	if q.spec.subs {
		w |= wantSubscriptions
	}
	if q.spec.pa {
		w |= wantPredictive
	}
	sc := scratchPool.Get().(*renderScratch)
	var included []includedRef
	b = append(b, `{"data":[`...)
	// Pages that include related objects need every profile materialized;
	// they are never cached.
	var key string
	first := 0
	if s.cache != nil && len(q.spec.includeTypes) == 0 {
		key = q.spec.cacheKey(w)
		b, first = s.cache.lookup(b, key, res.recs)
	}
	sc.spans = sc.spans[:0]
	for i := first; i < len(res.recs); i++ {
		if i > 0 {
			b = append(b, ',')
		}
		start := len(b)
		sc.a.b = sc.a.b[:0]
		materialize(&res.recs[i], w, &sc.a, &sc.p)
		b = appendProfile(b, &sc.p, q.spec)
		sc.spans = append(sc.spans, [2]int{start, len(b)})
		for _, rel := range q.spec.includeTypes {
			for _, id := range sc.p.related(rel) {
				ref := includedRef{typ: rel, id: strings.Clone(id), profileID: strings.Clone(sc.p.ID), created: res.recs[i].created}
				if !slices.ContainsFunc(included, func(x includedRef) bool { return x.typ == ref.typ && x.id == ref.id }) {
					included = append(included, ref)
				}
			}
		}
	}
	if key != "" && first < len(res.recs) {
		s.cache.store(key, res.recs[first:], b, sc.spans)
	}
	sc.p = Profile{Lists: sc.p.Lists[:0], Segments: sc.p.Segments[:0], PushTokens: sc.p.PushTokens[:0], Conversations: sc.p.Conversations[:0]}
	scratchPool.Put(sc)

	b = append(b, `],"links":{"self":`...)
	self := selfBase
	if rawQuery != "" {
		self += "?" + rawQuery
	}
	b = appendString(b, self)
	if res.prev != nil {
		b = append(b, `,"prev":`...)
		b = appendString(b, s.pageLink(selfBase, q.values, res.prev))
	}
	if res.next != nil {
		b = append(b, `,"next":`...)
		b = appendString(b, s.pageLink(selfBase, q.values, res.next))
	}
	b = append(b, '}')
	if len(q.spec.includeTypes) > 0 {
		b = append(b, `,"included":[`...)
		for i, ref := range included {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendIncluded(b, q.spec.base, ref)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// pageLink repeats every parameter of the request with a new cursor.
func (s *Server) pageLink(selfBase string, v url.Values, c *cursor) string {
	nv := make(url.Values, len(v)+1)
	for k, vs := range v {
		nv[k] = vs
	}
	nv.Set("page[cursor]", s.codec.encode(*c))
	return selfBase + "?" + nv.Encode()
}

// appendIncluded writes a related resource for included[].
func appendIncluded(b []byte, base string, ref includedRef) []byte {
	h := fnv.New64a()
	h.Write([]byte(ref.id))
	r := newRNG(h.Sum64(), 0)
	typ := strings.TrimSuffix(ref.typ, "s")
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","id":`...)
	b = appendString(b, ref.id)
	b = append(b, `,"attributes":{`...)
	switch ref.typ {
	case "lists":
		b = appendStringField(b, "name", listNames[slices.Index(listIDs, ref.id)%len(listNames)])
		b = append(b, `,"created":`...)
		b = appendTime(b, 1640995200)
		b = append(b, `,"updated":`...)
		b = appendTime(b, 1700000000)
		b = append(b, `,"opt_in_process":"single_opt_in"`...)
	case "segments":
		b = appendStringField(b, "name", segmentNames[slices.Index(segmentIDs, ref.id)%len(segmentNames)])
		b = append(b, `,"created":`...)
		b = appendTime(b, 1640995200)
		b = append(b, `,"updated":`...)
		b = appendTime(b, 1700000000)
		b = append(b, `,"is_active":true,"is_processing":false,"is_starred":false`...)
	case "push-tokens":
		ios := r.pct(60)
		b = append(b, `"created":`...)
		b = appendTime(b, ref.created)
		b = append(b, `,"token":"`...)
		for range 4 {
			b = strconv.AppendUint(b, r.u64()|1<<63, 16)
		}
		b = append(b, `","enablement_status":"`...)
		b = append(b, pick(&r, []string{"AUTHORIZED", "DENIED", "NOT_DETERMINED", "PROVISIONAL", "UNAUTHORIZED"})...)
		if ios {
			b = append(b, `","platform":"ios","vendor":"APNs"`...)
		} else {
			b = append(b, `","platform":"android","vendor":"FCM"`...)
		}
		b = append(b, `,"background":"AVAILABLE","recorded_date":`...)
		b = appendTime(b, ref.created)
		b = append(b, `,"metadata":{"device_id":"`...)
		b = strconv.AppendUint(b, r.u64()%1e10, 10)
		if ios {
			b = append(b, `","klaviyo_sdk":"swift","sdk_version":"4.0.0","device_model":"iPhone15,2","os_name":"ios","os_version":"17.4","manufacturer":"Apple"`...)
		} else {
			b = append(b, `","klaviyo_sdk":"android","sdk_version":"3.0.0","device_model":"Pixel 8","os_name":"android","os_version":"14","manufacturer":"Google"`...)
		}
		b = append(b, `,"app_name":"Shop","app_version":"1.0.0","app_build":"1","app_id":"com.example.shop","environment":"release"}`...)
	case "conversations":
		b = append(b, `"channel":"`...)
		b = append(b, pick(&r, []string{"instagram", "sms", "whatsapp"})...)
		b = append(b, '"')
	}
	b = append(b, '}')
	if ref.typ == "push-tokens" || ref.typ == "conversations" {
		b = append(b, `,"relationships":{"profile":{"data":{"type":"profile","id":`...)
		b = appendString(b, ref.profileID)
		self := base + "/api/" + ref.typ + "/" + ref.id + "/"
		b = append(b, `},"links":{"self":`...)
		b = appendString(b, self+"relationships/profile/")
		b = append(b, `,"related":`...)
		b = appendString(b, self+"profile/")
		b = append(b, "}}}"...)
	}
	b = append(b, `,"links":{"self":`...)
	b = appendString(b, base+"/api/"+ref.typ+"/"+ref.id+"/")
	return append(b, "}}"...)
}
