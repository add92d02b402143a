package klaviyosim

// Static vocabularies the synthetic profiles draw from. They mix ASCII with
// accents, CJK, emoji, quotes and a control character on purpose: the data
// must exercise every escaping and encoding path a consumer has.

type name struct {
	text string // as displayed (may be non-ASCII)
	slug string // ASCII form used in e-mail local parts
}

var firstNames = []name{
	{"Sarah", "sarah"}, {"James", "james"}, {"María", "maria"}, {"José", "jose"},
	{"Zoë", "zoe"}, {"François", "francois"}, {"Björn", "bjorn"}, {"Łukasz", "lukasz"},
	{"Søren", "soren"}, {"Ana", "ana"}, {"Mohammed", "mohammed"}, {"Aiko", "aiko"},
	{"太郎", "taro"}, {"美咲", "misaki"}, {"伟", "wei"}, {"Олег", "oleg"},
	{"Αλέξανδρος", "alexandros"}, {"Siobhán", "siobhan"}, {"Nguyễn Văn", "nguyen"}, {"Chloé", "chloe"},
	{"Emily", "emily"}, {"Michael", "michael"}, {"Priya", "priya"}, {"Jürgen", "jurgen"},
	{"Olivia", "olivia"}, {"Noah", "noah"}, {"Liam", "liam"}, {"Ava", "ava"},
	{"민준", "minjun"}, {"Fatima", "fatima"}, {"Diego", "diego"}, {"Ingrid", "ingrid"},
}

var lastNames = []name{
	{"Mason", "mason"}, {"Smith", "smith"}, {"García", "garcia"}, {"Müller", "muller"},
	{"O'Brien", "obrien"}, {"van der Berg", "vanderberg"}, {"山田", "yamada"}, {"李", "li"},
	{"Johnson", "johnson"}, {"Nakamura", "nakamura"}, {"Kowalski", "kowalski"}, {"Ødegaard", "odegaard"},
	{"Dubois", "dubois"}, {"Rossi", "rossi"}, {"Silva", "silva"}, {"Ivanova", "ivanova"},
	{"Papadopoulos", "papadopoulos"}, {"Nguyen", "nguyen"}, {"Brown", "brown"}, {"Jones", "jones"},
	{"Kim", "kim"}, {"Patel", "patel"}, {"Hernández", "hernandez"}, {"Schröder", "schroder"},
}

var domains = []string{
	"example.com", "gmail.com", "yahoo.co.jp", "web.de", "orange.fr", "outlook.com",
	"icloud.com", "klaviyo-demo.com", "proton.me", "example.org",
}

var organizations = []string{
	"Example Corporation", "Acme Inc.", "Café ☕ Collective", "株式会社サンプル", "Müller & Söhne GmbH",
	`O'Reilly "Quoted" Ltd`, "Tab\tSeparated LLC", "Globex", "Initech", "Umbrella Corp.",
	"Ñandú Textiles S.A.", "北京示例科技有限公司",
}

var titles = []string{
	"Regional Manager", "CEO", "Ingénieure logicielle", "プロダクトマネージャー", "Head of Growth 🚀",
	"Engineer", "Buyer", "Store Owner", "Data Analyst", "Designer", "VP, Sales & Marketing",
}

var locales = []string{"en-US", "en-GB", "fr-FR", "de-DE", "ja-JP", "zh-CN", "pt-BR", "es-MX", "pl-PL", "ko-KR"}

type city struct {
	city, country, region, timezone string
	lat, lon                        float64
	zip                             string // pattern: '#' = digit, '@' = letter
	streets                         []string
}

var cities = []city{
	{"New York", "United States", "NY", "America/New_York", 40.7128, -74.0060, "100##", []string{"E 42nd St", "Broadway", "5th Ave"}},
	{"Boston", "United States", "MA", "America/New_York", 42.3601, -71.0589, "021##", []string{"Boylston St", "Newbury St"}},
	{"San Francisco", "United States", "CA", "America/Los_Angeles", 37.7749, -122.4194, "941##", []string{"Market St", "Valencia St"}},
	{"Chicago", "United States", "IL", "America/Chicago", 41.8781, -87.6298, "606##", []string{"N Michigan Ave", "W Madison St"}},
	{"Austin", "United States", "TX", "America/Chicago", 30.2672, -97.7431, "787##", []string{"Congress Ave", "S Lamar Blvd"}},
	{"Toronto", "Canada", "ON", "America/Toronto", 43.6532, -79.3832, "M5V #@#", []string{"King St W", "Queen St E"}},
	{"London", "United Kingdom", "England", "Europe/London", 51.5074, -0.1278, "SW1A #@@", []string{"Baker Street", "Oxford St"}},
	{"Paris", "France", "Île-de-France", "Europe/Paris", 48.8566, 2.3522, "750##", []string{"Rue de Rivoli", "Boulevard Saint-Germain"}},
	{"München", "Germany", "Bayern", "Europe/Berlin", 48.1351, 11.5820, "80###", []string{"Maximilianstraße", "Leopoldstraße"}},
	{"São Paulo", "Brazil", "SP", "America/Sao_Paulo", -23.5505, -46.6333, "01310-###", []string{"Avenida Paulista", "Rua Augusta"}},
	{"Ciudad de México", "Mexico", "CDMX", "America/Mexico_City", 19.4326, -99.1332, "06###", []string{"Paseo de la Reforma", "Av. Insurgentes Sur"}},
	{"東京", "Japan", "東京都", "Asia/Tokyo", 35.6762, 139.6503, "100-####", []string{"銀座1丁目", "渋谷2-21-1"}},
	{"上海", "China", "上海市", "Asia/Shanghai", 31.2304, 121.4737, "200###", []string{"南京东路", "淮海中路"}},
	{"Sydney", "Australia", "NSW", "Australia/Sydney", -33.8688, 151.2093, "2###", []string{"George St", "Pitt St"}},
	{"Kraków", "Poland", "Małopolskie", "Europe/Warsaw", 50.0647, 19.9450, "3#-###", []string{"ul. Floriańska", "ul. Grodzka"}},
	{"Reykjavík", "Iceland", "Höfuðborgarsvæðið", "Atlantic/Reykjavik", 64.1466, -21.9426, "1##", []string{"Laugavegur"}},
	{"Zürich", "Switzerland", "ZH", "Europe/Zurich", 47.3769, 8.5417, "80##", []string{"Bahnhofstrasse"}},
	{"서울", "South Korea", "서울특별시", "Asia/Seoul", 37.5665, 126.9780, "0####", []string{"세종대로", "테헤란로"}},
	{"Mumbai", "India", "Maharashtra", "Asia/Kolkata", 19.0760, 72.8777, "4000##", []string{"Marine Drive", "Linking Road"}},
	{"Cape Town", "South Africa", "Western Cape", "Africa/Johannesburg", -33.9249, 18.4241, "80##", []string{"Long St", "Bree St"}},
}

// listIDs, segmentIDs look like Klaviyo's 6-character list and segment ids.
var listIDs = []string{"Y6nRLr", "RkXwQ2", "TcA8pM", "Vb3hJk", "Xz9LmN", "QwE4rT", "HjK7uP", "SdF2gH"}

var listNames = []string{"Newsletter", "VIP", "Back in stock", "Früh-Käufer", "ニュースレター", "SMS opt-in 📱", "Wholesale", "Abandoned cart"}

var segmentIDs = []string{"UgR5tY", "PoI9uY", "LkJ8hG", "MnB6vC", "ZxC3vB", "AsD1fG"}

var segmentNames = []string{"Engaged 30d", "Churn risk", "High CLV", "Lapsed buyers", "Nouveaux clients", "Everyone"}

var consentValues = []string{"SUBSCRIBED", "UNSUBSCRIBED", "NEVER_SUBSCRIBED"}

var emailMethods = []string{"PREFERENCE_PAGE", "FORM", "API", "IMPORT", "BACK_IN_STOCK"}

var suppressionReasons = []string{"HARD_BOUNCE", "INVALID_EMAIL", "SPAM_COMPLAINT", "UNSUBSCRIBE", "USER_SUPPRESSED"}

var channels = []string{"email", "push", "sms", "whatsapp"}

var plans = []string{"free", "pro", "enterprise", "trial"}

var colors = []string{"blue", "yellow", "verde", "rouge", "紫", "🟢 green"}

var nicknames = []string{"🦄 Unicorn", "Zoë 🌸", "The \"Boss\"", `back\slash`, "</script><b>", "line\nbreak", "😀😃😄", "Ünïcödé"}

var sources = []string{"Shopify", "WooCommerce", "Magento", "Zapier", "CSV import", "API"}
