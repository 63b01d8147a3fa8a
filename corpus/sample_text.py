"""Text pools for the generated crawls: English prose that ships with Python, and news-style
sentences in other languages written for this project.

English comes from `pydoc_data.topics` (the language reference behind `help()`) and stdlib
docstrings, so nothing is downloaded and the text is real prose. It depends on the Python
version, which is why the bundled sample is regenerated with the project's pinned Python.

Non-English pages are assembled from the sentence pools below: each page draws a different
subset in a different order and fills the {slots}, so two pages in the same language share
few 5-gram shingles and are not near-duplicates of each other.
"""
from __future__ import annotations

import importlib
import inspect
import re

import pydoc_data.topics

# Modules whose docstrings read as prose; a fixed list keeps the sample deterministic and
# avoids importing modules with side effects (antigravity, this, tkinter...).
DOC_MODULES = [
    "argparse", "asyncio.events", "base64", "bisect", "calendar", "collections", "configparser",
    "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "doctest",
    "email.message", "enum", "fileinput", "fnmatch", "fractions", "ftplib", "functools",
    "getopt", "gettext", "glob", "gzip", "hashlib", "heapq", "hmac", "html.parser",
    "http.client", "http.cookiejar", "imaplib", "inspect", "ipaddress", "json", "locale",
    "logging", "mailbox", "mimetypes", "netrc", "numbers", "operator", "optparse", "os",
    "pathlib", "pdb", "pickle", "pickletools", "platform", "plistlib", "poplib", "pprint",
    "profile", "queue", "quopri", "random", "re", "sched", "secrets", "selectors", "shelve",
    "shlex", "shutil", "smtplib", "socket", "socketserver", "sqlite3", "statistics",
    "string", "subprocess", "symtable", "tarfile", "tempfile", "textwrap", "threading",
    "timeit", "tokenize", "trace", "traceback", "typing", "unittest.case", "urllib.parse",
    "urllib.request", "uuid", "warnings", "wave", "weakref", "xml.dom.minidom", "zipfile",
]


def _paragraphs(text: str) -> list[str]:
    """Split on blank lines, join wrapped lines, drop reStructuredText underlines."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in block.strip().splitlines()]
        lines = [ln for ln in lines if ln and not re.fullmatch(r"[*=\-~^]{3,}", ln)]
        if lines:
            out.append(" ".join(lines))
    return out


def pydoc_articles() -> list[tuple[str, list[str]]]:
    """(title, paragraphs) for every pydoc topic, in sorted key order."""
    articles = []
    for key in sorted(pydoc_data.topics.topics):
        text = pydoc_data.topics.topics[key]
        title = text.strip().splitlines()[0].strip()
        paras = _paragraphs(text)[1:] if len(_paragraphs(text)) > 1 else _paragraphs(text)
        articles.append((title, paras))
    return articles


def docstring_articles() -> list[tuple[str, list[str]]]:
    """(title, paragraphs) per module in DOC_MODULES: module docstring plus public members'."""
    articles = []
    for name in DOC_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:  # a stripped-down Python without e.g. sqlite3
            continue
        paras = _paragraphs(inspect.getdoc(mod) or "")
        for attr in sorted(getattr(mod, "__all__", None) or dir(mod)):
            if attr.startswith("_"):
                continue
            obj = getattr(mod, attr, None)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, "__module__", "") == mod.__name__:
                paras += _paragraphs(inspect.getdoc(obj) or "")
        # Sibling functions often share docstring paragraphs; keep each once.
        paras = [p for p in dict.fromkeys(paras) if len(p.split()) >= 8]
        if sum(len(p.split()) for p in paras) >= 120:
            articles.append((f"Inside the {name} module", paras[:40]))
    return articles


SLOTS = {
    "city": ["Berlin", "Lyon", "Sevilla", "Torino", "Utrecht", "Porto", "Hamburg", "Nantes",
             "Valencia", "Bologna", "Leiden", "Braga", "Dresden", "Lille", "Bilbao", "Verona"],
    "num": [str(n) for n in (3, 7, 12, 18, 24, 35, 41, 56, 63, 78, 85, 97, 120, 250, 1400)],
    "name": ["Müller", "Dubois", "García", "Rossi", "de Vries", "Silva", "Schneider", "Lefèvre",
             "Martínez", "Bianchi", "Jansen", "Costa", "Fischer", "Moreau", "López", "Ricci"],
}

FOREIGN_SENTENCES: dict[str, list[str]] = {
    "de": [
        "Der Stadtrat von {city} hat am Dienstag nach langer Debatte einen neuen Haushalt beschlossen.",
        "Nach Angaben der Polizei wurden bei dem Unfall auf der Autobahn {num} Menschen leicht verletzt.",
        "Bürgermeisterin {name} kündigte an, die Sanierung der Schulen deutlich zu beschleunigen.",
        "Die Opposition kritisierte, dass die Pläne zu spät vorgelegt worden seien.",
        "Wegen des anhaltenden Regens rechnen die Behörden in den kommenden Tagen mit Hochwasser.",
        "Die Preise für Energie sind im vergangenen Monat erneut gestiegen, teilte das Statistikamt mit.",
        "Viele Pendler mussten am Morgen wegen eines Streiks auf Busse und Fahrräder umsteigen.",
        "Der Verein aus {city} gewann das Heimspiel vor ausverkauftem Haus mit drei zu eins.",
        "Experten warnen davor, die Folgen des Klimawandels für die Landwirtschaft zu unterschätzen.",
        "In der Innenstadt soll bis zum Sommer ein neuer Radweg mit {num} Stellplätzen entstehen.",
        "Die Gewerkschaft fordert höhere Löhne und eine kürzere Arbeitszeit für alle Beschäftigten.",
        "Das Museum zeigt ab Freitag eine Ausstellung über die Geschichte der Stadt im Mittelalter.",
        "Laut einer Umfrage sind die meisten Bürger mit dem öffentlichen Nahverkehr unzufrieden.",
        "Die Landesregierung will die Förderung für erneuerbare Energien im nächsten Jahr ausbauen.",
        "Ein Sprecher des Unternehmens bestätigte, dass rund {num} Stellen abgebaut werden sollen.",
        "Die Feuerwehr konnte den Brand in der Lagerhalle erst nach mehreren Stunden löschen.",
        "Kritiker befürchten, dass die Mieten in der Region weiter steigen werden.",
        "Die Bauarbeiten an der Brücke werden voraussichtlich noch bis zum Herbst dauern.",
    ],
    "fr": [
        "Le conseil municipal de {city} a adopté mardi soir un nouveau plan de circulation.",
        "Selon la préfecture, {num} personnes ont été évacuées à cause des inondations.",
        "La maire {name} a promis de rénover les écoles avant la rentrée prochaine.",
        "Les syndicats appellent à une nouvelle journée de grève la semaine prochaine.",
        "Le prix de l'électricité a encore augmenté le mois dernier, selon l'institut national.",
        "Des milliers de spectateurs ont assisté au festival de musique organisé dans le parc.",
        "L'équipe de {city} s'est imposée à domicile grâce à un but marqué dans les dernières minutes.",
        "Les scientifiques s'inquiètent de la baisse rapide du niveau des nappes phréatiques.",
        "Un nouveau musée consacré à l'histoire industrielle de la région ouvrira ses portes en juin.",
        "Le gouvernement prévoit d'investir davantage dans les transports en commun.",
        "Les habitants du quartier dénoncent le bruit et la pollution causés par le chantier.",
        "D'après un sondage récent, la majorité des jeunes souhaitent travailler à l'étranger.",
        "La compagnie aérienne a annoncé la suppression de {num} vols pendant les vacances.",
        "Les pompiers sont intervenus rapidement pour éteindre l'incendie dans l'entrepôt.",
        "Le tribunal rendra sa décision dans cette affaire au début du mois prochain.",
        "Plusieurs associations demandent plus de logements sociaux dans le centre-ville.",
        "Les agriculteurs craignent que la sécheresse ne réduise fortement les récoltes.",
        "Le ministre a défendu sa réforme devant les députés pendant plus de deux heures.",
    ],
    "es": [
        "El ayuntamiento de {city} aprobó ayer por la tarde el presupuesto para el próximo año.",
        "Según la policía, {num} personas resultaron heridas en el accidente de la autopista.",
        "La alcaldesa {name} prometió mejorar el transporte público en los barrios periféricos.",
        "Los sindicatos han convocado una huelga general para finales de mes.",
        "El precio de la vivienda volvió a subir durante el último trimestre, según los datos oficiales.",
        "Miles de personas se concentraron en la plaza mayor para celebrar la victoria del equipo.",
        "Los expertos advierten de que la sequía podría afectar gravemente a la agricultura.",
        "El museo inaugurará la próxima semana una exposición dedicada a la pintura contemporánea.",
        "El gobierno regional anunció nuevas ayudas para las pequeñas y medianas empresas.",
        "Los vecinos se quejan del ruido provocado por las obras en el centro de la ciudad.",
        "La empresa confirmó que contratará a {num} trabajadores en su nueva fábrica.",
        "Los bomberos tardaron varias horas en controlar el incendio forestal.",
        "Una encuesta reciente muestra que los jóvenes tienen cada vez más dificultades para emanciparse.",
        "El tribunal supremo dictará sentencia sobre el caso antes del verano.",
        "La universidad de {city} abrirá un nuevo centro de investigación sobre energías renovables.",
        "Los médicos reclaman más personal para reducir las listas de espera en los hospitales.",
        "El partido de la oposición criticó duramente la gestión de la crisis.",
        "Las lluvias de los últimos días han llenado parcialmente los embalses de la región.",
    ],
    "it": [
        "Il consiglio comunale di {city} ha approvato ieri sera il nuovo piano urbanistico.",
        "Secondo i carabinieri, {num} persone sono rimaste ferite nell'incidente stradale.",
        "Il sindaco {name} ha annunciato nuovi investimenti per le scuole della città.",
        "I sindacati hanno proclamato uno sciopero dei trasporti per venerdì prossimo.",
        "Il prezzo della benzina è aumentato ancora nell'ultimo mese, secondo l'istituto di statistica.",
        "Migliaia di tifosi hanno festeggiato in piazza la vittoria della squadra.",
        "Gli esperti avvertono che la siccità potrebbe danneggiare gravemente i raccolti.",
        "Il museo ospiterà da sabato una mostra dedicata all'arte del Rinascimento.",
        "La regione ha stanziato nuovi fondi per sostenere le piccole imprese.",
        "I residenti lamentano il traffico e il rumore causati dai lavori in corso.",
        "L'azienda ha confermato l'assunzione di {num} nuovi dipendenti entro l'anno.",
        "I vigili del fuoco hanno spento l'incendio dopo diverse ore di lavoro.",
        "Un sondaggio mostra che molti giovani pensano di trasferirsi all'estero.",
        "Il tribunale deciderà sul ricorso all'inizio del mese prossimo.",
        "L'università di {city} aprirà un nuovo laboratorio di ricerca sull'energia solare.",
        "I medici chiedono più personale per ridurre le liste d'attesa negli ospedali.",
    ],
    "nl": [
        "De gemeenteraad van {city} heeft dinsdagavond een nieuwe begroting goedgekeurd.",
        "Volgens de politie raakten {num} mensen gewond bij het ongeluk op de snelweg.",
        "Burgemeester {name} beloofde dat de scholen sneller worden gerenoveerd.",
        "De vakbonden dreigen met nieuwe stakingen als er geen akkoord komt.",
        "De energieprijzen zijn vorige maand opnieuw gestegen, meldt het statistiekbureau.",
        "Duizenden fietsers namen zondag deel aan de jaarlijkse tocht door de provincie.",
        "Deskundigen waarschuwen dat de droogte grote gevolgen heeft voor de boeren.",
        "Het museum opent volgende week een tentoonstelling over de geschiedenis van de haven.",
        "Het kabinet wil meer geld uittrekken voor het openbaar vervoer.",
        "Buurtbewoners klagen over de overlast van de bouwwerkzaamheden in het centrum.",
        "Het bedrijf bevestigde dat er {num} banen verdwijnen bij de fabriek.",
        "De brandweer had uren nodig om de brand in de loods te blussen.",
        "Uit een peiling blijkt dat veel jongeren moeite hebben om een woning te vinden.",
        "De rechter doet volgende maand uitspraak in de zaak.",
        "De universiteit van {city} start een nieuw onderzoek naar zonne-energie.",
        "Artsen vragen om meer personeel om de wachtlijsten te verkorten.",
    ],
    "pt": [
        "A câmara municipal de {city} aprovou ontem à noite o novo orçamento.",
        "Segundo a polícia, {num} pessoas ficaram feridas no acidente na autoestrada.",
        "A presidente da câmara, {name}, prometeu melhorar os transportes públicos.",
        "Os sindicatos convocaram uma greve geral para o final do mês.",
        "O preço da habitação voltou a subir no último trimestre, segundo os dados oficiais.",
        "Milhares de adeptos festejaram nas ruas a vitória da equipa.",
        "Os especialistas alertam que a seca pode prejudicar gravemente a agricultura.",
        "O museu vai inaugurar na próxima semana uma exposição sobre a história da cidade.",
        "O governo anunciou novos apoios para as pequenas e médias empresas.",
        "Os moradores queixam-se do barulho provocado pelas obras no centro.",
        "A empresa confirmou a contratação de {num} trabalhadores para a nova fábrica.",
        "Os bombeiros demoraram várias horas a controlar o incêndio.",
        "Um inquérito recente mostra que os jovens têm cada vez mais dificuldade em sair de casa.",
        "O tribunal vai pronunciar-se sobre o caso antes do verão.",
        "A universidade de {city} vai abrir um novo centro de investigação sobre energias renováveis.",
        "Os médicos pedem mais profissionais para reduzir as listas de espera.",
    ],
}

FOREIGN_TITLES = {
    "de": "Nachrichten aus {city}", "fr": "Actualités de {city}", "es": "Noticias de {city}",
    "it": "Notizie da {city}", "nl": "Nieuws uit {city}", "pt": "Notícias de {city}",
}


def foreign_article(lang: str, rng) -> tuple[str, list[str]]:
    """A news-style article in `lang`: 3-5 paragraphs of shuffled, slot-filled sentences."""
    pool = FOREIGN_SENTENCES[lang]
    fill = lambda s: s.format(**{k: rng.choice(v) for k, v in SLOTS.items()})  # noqa: E731
    paras = []
    for _ in range(rng.randint(3, 5)):
        paras.append(" ".join(fill(s) for s in rng.sample(pool, rng.randint(3, 5))))
    return fill(FOREIGN_TITLES[lang]), paras
