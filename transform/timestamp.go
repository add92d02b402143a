package transform

import "errors"

var (
	errTimestampSyntax = errors.New("not a date-time: want YYYY-MM-DD, optionally followed by 'T' or ' ', hh:mm:ss, a fraction and Z or ±hh:mm")
	errTimestampRange  = errors.New("date-time field out of range")
)

// parseTimestamp reads every date-time form Klaviyo has been seen to send
// and returns microseconds since the Unix epoch, UTC:
//
//	2023-06-05T14:49:54+00:00     RuleTimestampOffset (also Z, z, ±hhmm, ±hh)
//	2023-08-14 15:50:46.123+00:00 RuleTimestampOffset (space separator, fraction)
//	2022-11-08T00:00:00           RuleTimestampNoOffset (read as UTC)
//	2022-11-08                    RuleTimestampDate (midnight UTC)
//
// Digits past the sixth of a fraction cannot be stored in microseconds; the
// instant is truncated (toward the past) and lossy reports whether any of
// them was not zero.
func parseTimestamp(s []byte) (us int64, rule Rule, lossy bool, err error) {
	num := func(i, n int) (int, bool) {
		if i+n > len(s) {
			return 0, false
		}
		v := 0
		for _, c := range s[i : i+n] {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 2)
	day, ok3 := num(8, 2)
	if !ok1 || !ok2 || !ok3 || s[4] != '-' || s[7] != '-' {
		return 0, 0, false, errTimestampSyntax
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) {
		return 0, 0, false, errTimestampRange
	}
	days := daysFromCivil(year, month, day)
	if len(s) == 10 {
		return days * 86400 * 1e6, RuleTimestampDate, false, nil
	}
	if sep := s[10]; sep != 'T' && sep != 't' && sep != ' ' {
		return 0, 0, false, errTimestampSyntax
	}
	hour, ok1 := num(11, 2)
	minute, ok2 := num(14, 2)
	sec, ok3 := num(17, 2)
	if !ok1 || !ok2 || !ok3 || s[13] != ':' || s[16] != ':' {
		return 0, 0, false, errTimestampSyntax
	}
	if hour > 23 || minute > 59 || sec > 59 {
		return 0, 0, false, errTimestampRange
	}
	i := 19
	var frac int64
	if i < len(s) && s[i] == '.' {
		i++
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if n < 6 {
				frac = frac*10 + int64(s[i]-'0')
			} else if s[i] != '0' {
				lossy = true
			}
			n++
			i++
		}
		if n == 0 {
			return 0, 0, false, errTimestampSyntax
		}
		for ; n < 6; n++ {
			frac *= 10
		}
	}
	offset := 0
	rule = RuleTimestampNoOffset
	if i < len(s) {
		rule = RuleTimestampOffset
		switch s[i] {
		case 'Z', 'z':
			i++
		case '+', '-':
			sign := 1
			if s[i] == '-' {
				sign = -1
			}
			oh, ok := num(i+1, 2)
			if !ok {
				return 0, 0, false, errTimestampSyntax
			}
			i += 3
			om := 0
			if i < len(s) {
				if s[i] == ':' {
					i++
				}
				if om, ok = num(i, 2); !ok {
					return 0, 0, false, errTimestampSyntax
				}
				i += 2
			}
			if oh > 23 || om > 59 {
				return 0, 0, false, errTimestampRange
			}
			offset = sign * (oh*3600 + om*60)
		default:
			return 0, 0, false, errTimestampSyntax
		}
		if i != len(s) {
			return 0, 0, false, errTimestampSyntax
		}
	}
	secs := days*86400 + int64(hour*3600+minute*60+sec) - int64(offset)
	return secs*1e6 + frac, rule, lossy, nil
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	default:
		return 31
	}
}

// daysFromCivil returns the days from 1970-01-01 to y-m-d in the proleptic
// Gregorian calendar (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
