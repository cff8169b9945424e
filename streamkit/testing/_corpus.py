"""Word lists, names, places and clients the status generator draws from.

Kept apart from the generator so the data can grow without burying the logic.
The mix of languages follows what a filtered v1.1 stream looked like around
2018-2019: mostly English, then Spanish, Japanese, Portuguese, Arabic, French.
"""

from __future__ import annotations

__all__ = [
    "EMOJI",
    "FIRST_NAMES",
    "LANG_WEIGHTS",
    "LAST_NAMES",
    "PLACES",
    "SOURCES",
    "SPACED_LANGS",
    "TOWN_NAMES",
    "WORDS",
]

# (lang, weight): the share of each language among generated statuses.
LANG_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("en", 52), ("es", 11), ("ja", 10), ("pt", 7), ("ar", 5), ("fr", 5),
    ("und", 4), ("tr", 2), ("de", 2), ("ko", 2),
)

# Languages written without spaces between words.
SPACED_LANGS = frozenset({"en", "es", "pt", "ar", "fr", "tr", "de", "ko", "und"})

WORDS: dict[str, tuple[str, ...]] = {
    "en": tuple(
        "the a to and of in is it you that for on this my be with just so are "
        "have not but all what your at me was can like get out we if about day "
        "love people time today good know new now one great really think world "
        "need see going want back still news morning night week weekend tonight "
        "happy thanks best game team season watch video live show story life "
        "never always everyone right here first last year made make work home "
        "city music album song new great amazing awesome crazy honestly literally "
        "open data science research paper report vote election market stock price "
        "coffee weather rain sunny snow traffic train flight travel beach summer "
        "winter friends family birthday party food pizza dinner lunch breakfast "
        "finally again soon tomorrow yesterday moment thread update breaking".split()
    ),
    "es": tuple(
        "que de no la el en y a los se por un con para una su más al lo como "
        "pero sus le ya o este sí porque esta entre cuando muy sin sobre también "
        "me hasta hay donde quien desde todo nos durante todos uno les ni contra "
        "otros ese eso ante ellos día año años mañana noche corazón canción niño "
        "niña fútbol partido gol campeón país gobierno política elección México "
        "España Argentina ciudad música amor vida feliz gracias increíble jamás "
        "qué cómo está están después así mamá papá familia amigos fiesta".split()
    ),
    "pt": tuple(
        "que não de o a e do da em um para é com uma os no se na por mais as dos "
        "como mas foi ao ele das tem à seu sua ou ser quando muito há nos já está "
        "eu também só pelo pela até isso ela entre era depois sem mesmo aos ter "
        "você coração ação eleição futebol jogo gol Brasil São Paulo vida amor "
        "obrigado obrigada saudade família amigos hoje amanhã noite dia irmão".split()
    ),
    "fr": tuple(
        "le de un être et à il avoir ne je son que se qui ce dans en du elle au "
        "pour pas sur plus pouvoir par vouloir tout faire mettre dire aller même "
        "très déjà été où là voilà français française élection gouvernement "
        "président match équipe musique vie amour merci génial journée soirée "
        "café boulangerie Paris Lyon Marseille grève météo printemps été hiver".split()
    ),
    "de": tuple(
        "der die und in den von zu das mit sich des auf für ist im dem nicht ein "
        "eine als auch es an werden aus er hat dass sie nach wird bei einer um "
        "über schön Straße Grüße Mädchen Fußball Bundesliga Wahl Regierung "
        "Berlin München Hamburg Wetter heute morgen danke großartig".split()
    ),
    "tr": tuple(
        "bir ve bu da de için çok ne ile gibi daha ama sonra kadar şey değil ben "
        "sen o biz siz onlar güzel teşekkürler İstanbul Ankara maç seçim hükümet "
        "bugün yarın akşam sabah ışık çiçek öğrenci güneş yağmur".split()
    ),
    "ar": tuple(
        "في من على إلى أن عن مع هذا هذه كان التي الذي كل لا ما هو هي قد بعد "
        "اليوم الله الحمد شكرا جميل السعودية مصر القاهرة الرياض دبي مباراة "
        "الهلال الأهلي انتخابات الحكومة الحب الحياة صباح مساء الخير رمضان".split()
    ),
    "ja": (
        "今日は", "明日", "東京", "大阪", "ありがとう", "ございます", "本当に", "楽しい",
        "天気", "雨", "晴れ", "ラーメン", "美味しい", "仕事", "電車", "遅延", "最高",
        "ライブ", "新曲", "発売", "おはよう", "おやすみ", "かわいい", "すごい", "です",
        "ました", "ですね", "よろしく", "お願いします", "試合", "勝利", "ニュース",
        "地震", "速報", "選挙", "映画", "アニメ", "ゲーム", "週末", "友達", "。", "、",
        "！", "w", "笑",
    ),
    "ko": (
        "오늘", "내일", "서울", "감사합니다", "사랑해", "정말", "너무", "좋아요", "음악",
        "콘서트", "방탄소년단", "축하해", "생일", "날씨", "맛있다", "친구", "주말",
    ),
    "und": ("😂", "❤️", "🔥", "👍", "🙏", "😍", "🎉", "✨", "💯", "👏", "😭", "🥺"),
}

EMOJI: tuple[str, ...] = (
    "😂", "❤️", "🔥", "👍", "🙏", "😍", "🎉", "✨", "🌍", "💯", "👏", "😭", "🤔",
    "🙌", "😊", "💪", "🚀", "📈", "⚽", "🎶", "☀️", "🌧️", "🇺🇸", "🇧🇷", "🇯🇵",
)

FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "en": ("James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda",
           "Emily", "Chris", "Sarah", "Daniel", "Ashley", "Matt", "Jess", "Tyler"),
    "es": ("José", "María", "Andrés", "Lucía", "Sofía", "Martín", "Camila", "Jesús",
           "Ángel", "Valentina", "Diego", "Mónica"),
    "pt": ("João", "Ana", "Lucas", "Júlia", "Gabriel", "Letícia", "Vitória", "Conceição"),
    "fr": ("Léa", "Chloé", "Hélène", "François", "Jérôme", "Élodie", "Amélie", "Loïc"),
    "de": ("Jürgen", "Lena", "Björn", "Jörg", "Anna", "Lukas", "Mia"),
    "tr": ("Ayşe", "Mehmet", "Çağla", "Gökhan", "Şule", "Emre"),
    "ar": ("محمد", "أحمد", "فاطمة", "نورة", "عبدالله", "سارة", "خالد"),
    "ja": ("さくら", "ゆうき", "はると", "みさき", "たろう", "あおい", "けんた"),
    "ko": ("민준", "서연", "지우", "하은", "도윤"),
}
FIRST_NAMES["und"] = FIRST_NAMES["en"]

LAST_NAMES: dict[str, tuple[str, ...]] = {
    "en": ("Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson",
           "Taylor", "Clark", "Lewis", "Walker"),
    "es": ("García", "Martínez", "López", "González", "Pérez", "Sánchez", "Ramírez",
           "Núñez", "Muñoz"),
    "pt": ("Silva", "Santos", "Oliveira", "Souza", "Lima", "Araújo", "Gonçalves"),
    "fr": ("Martin", "Bernard", "Dubois", "Lefèvre", "Mercier", "Fontaine", "Gérard"),
    "de": ("Müller", "Schmidt", "Schneider", "Fischer", "Weiß", "Groß"),
    "tr": ("Yılmaz", "Kaya", "Demir", "Şahin", "Çelik", "Öztürk"),
    "ar": ("العتيبي", "الشمري", "القحطاني", "حسن", "إبراهيم"),
    "ja": ("佐藤", "鈴木", "高橋", "田中", "渡辺", "伊藤"),
    "ko": ("김", "이", "박", "최", "정"),
}
LAST_NAMES["und"] = LAST_NAMES["en"]

# (display name, href) of the client that posted; the weights favour phones.
SOURCES: tuple[tuple[str, str, int], ...] = (
    ("Twitter for iPhone", "http://twitter.com/download/iphone", 38),
    ("Twitter for Android", "http://twitter.com/download/android", 32),
    ("Twitter Web App", "https://mobile.twitter.com", 14),
    ("Twitter Web Client", "http://twitter.com", 4),
    ("TweetDeck", "https://about.twitter.com/products/tweetdeck", 3),
    ("Twitter for iPad", "http://twitter.com/#!/download/ipad", 3),
    ("Hootsuite Inc.", "https://hootsuite.com", 2),
    ("IFTTT", "https://ifttt.com", 1),
    ("Buffer", "https://buffer.com", 1),
    ("Instagram", "http://instagram.com", 2),
)

# (place id, place_type, name, full_name, country_code, country,
#  (west, south, east, north)) -- real city bounding boxes, rounded.
PLACES: tuple[tuple[str, str, str, str, str, str, tuple[float, float, float, float]], ...] = (
    ("01a9a39529b27f36", "city", "Manhattan", "Manhattan, NY", "US", "United States",
     (-74.026675, 40.683935, -73.910408, 40.877483)),
    ("3b77caf94bfc81fe", "city", "Los Angeles", "Los Angeles, CA", "US", "United States",
     (-118.668404, 33.704538, -118.155409, 34.337041)),
    ("5a110d312052166f", "city", "San Francisco", "San Francisco, CA", "US",
     "United States", (-122.514926, 37.708075, -122.357031, 37.833238)),
    ("457b4814b4240d87", "city", "London", "London, England", "GB", "United Kingdom",
     (-0.510375, 51.28676, 0.334016, 51.691874)),
    ("09f6a7707f18e0b1", "city", "Paris", "Paris, France", "FR", "France",
     (2.224122, 48.815576, 2.46976, 48.902156)),
    ("206e932cc0e89fa2", "city", "Madrid", "Madrid, España", "ES", "España",
     (-3.888956, 40.312026, -3.517892, 40.643282)),
    ("9c71e1c8e8d8b9a1", "city", "Berlin", "Berlin, Deutschland", "DE", "Deutschland",
     (13.088345, 52.338245, 13.761161, 52.675509)),
    ("68e019afec7d0ba5", "city", "São Paulo", "São Paulo, Brasil", "BR", "Brasil",
     (-46.826039, -24.008814, -46.365052, -23.356792)),
    ("018f1cde6bad9747", "city", "Ciudad de México", "Ciudad de México, México", "MX",
     "México", (-99.364924, 19.048237, -98.940303, 19.592757)),
    ("4a5a2bd7f4a6d2b0", "city", "Buenos Aires", "Buenos Aires, Argentina", "AR",
     "Argentina", (-58.531529, -34.705637, -58.335073, -34.526626)),
    ("2e2cd1d2a2b0f4a3", "city", "新宿区", "東京 新宿区", "JP", "日本",
     (139.672932, 35.674900, 139.745570, 35.730300)),
    ("7b3e5c3a9d1f2e40", "city", "大阪市", "大阪 大阪市", "JP", "日本",
     (135.354, 34.581, 135.611, 34.776)),
    ("0c2e6999105f8070", "city", "القاهرة", "القاهرة, مصر", "EG", "مصر",
     (31.126, 29.923, 31.446, 30.152)),
    ("5e4a2f1b8c7d6e90", "city", "الرياض", "الرياض, المملكة العربية السعودية", "SA",
     "المملكة العربية السعودية", (46.542, 24.483, 46.993, 24.978)),
    ("5e02a0f0d91c76d2", "city", "İstanbul", "İstanbul, Türkiye", "TR", "Türkiye",
     (28.504, 40.802, 29.436, 41.229)),
    ("e1b2c3d4a5f60718", "city", "Seoul", "Seoul, Republic of Korea", "KR",
     "Republic of Korea", (126.764, 37.413, 127.184, 37.701)),
    ("0073b76548e5984f", "city", "Sydney", "Sydney, New South Wales", "AU", "Australia",
     (150.520934, -34.118345, 151.343021, -33.578141)),
)

# Names for places invented inside a requested bounding box.
TOWN_NAMES: tuple[str, ...] = (
    "Riverside", "Fairview", "Greenville", "Madison", "Georgetown", "Springfield",
    "Clinton", "Salem", "Franklin", "Bristol", "Oakland", "Ashland", "Burlington",
    "Milton", "Newport", "Kingston", "Dover", "Hudson", "Lakewood", "Centerville",
)
