"""Reference tables and name rules for the synthetic data generator in :mod:`signpost.synth`.

Authorities, postcode districts, naming traditions, nicknames and spelling
variants, streets and services, plus the small rules that vary a name the way
records do (accents dropped, typos, feminine surname forms) and the key under
which variants of one name agree. Everything here is invented or public
reference knowledge; nothing describes a real child. Keeping it apart lets the
generator's logic stay readable.
"""

from __future__ import annotations

import functools
import random
import re
import unicodedata
from dataclasses import dataclass

# CODE | Name | region | relative size (about thousands of children aged 0-17) | postcode districts.
# The 152 upper-tier authorities with children's services as counted before
# Cumbria's 2023 split (kept whole so the count matches the contract's 152).
# Sizes are rough 0-17 population estimates: proportional, not exact.
_AUTHORITY_TABLE = """
COUNTY-DURHAM|County Durham|North East|100|DH1 DH7 DL14 DL15 SR8
DARLINGTON|Darlington|North East|23|DL1 DL2 DL3
GATESHEAD|Gateshead|North East|40|NE8 NE9 NE10 NE11
HARTLEPOOL|Hartlepool|North East|20|TS24 TS25 TS26
MIDDLESBROUGH|Middlesbrough|North East|35|TS1 TS3 TS4 TS5
NEWCASTLE-UPON-TYNE|Newcastle upon Tyne|North East|58|NE1 NE4 NE5 NE6
NORTH-TYNESIDE|North Tyneside|North East|45|NE25 NE28 NE29 NE30
NORTHUMBERLAND|Northumberland|North East|60|NE61 NE63 NE46 NE65 TD15
REDCAR-CLEVELAND|Redcar and Cleveland|North East|28|TS10 TS11 TS6 TS14
SOUTH-TYNESIDE|South Tyneside|North East|30|NE31 NE32 NE33 NE34
STOCKTON-ON-TEES|Stockton-on-Tees|North East|44|TS17 TS18 TS19 TS20
SUNDERLAND|Sunderland|North East|55|SR1 SR2 SR4 SR5
BLACKBURN-DARWEN|Blackburn with Darwen|North West|42|BB1 BB2 BB3
BLACKPOOL|Blackpool|North West|28|FY1 FY2 FY3 FY4
BOLTON|Bolton|North West|70|BL1 BL2 BL3 BL4
BURY|Bury|North West|43|BL8 BL9 M26 M45
CHESHIRE-EAST|Cheshire East|North West|78|CW1 CW2 SK10 SK11 CW12
CHESHIRE-WEST-CHESTER|Cheshire West and Chester|North West|70|CH1 CH2 CH3 CW9 CH65
CUMBRIA|Cumbria|North West|90|CA1 CA2 CA14 LA9 LA14
HALTON|Halton|North West|28|WA7 WA8
KNOWSLEY|Knowsley|North West|36|L28 L35 L36 L34
LANCASHIRE|Lancashire|North West|260|PR1 PR2 LA1 BB5 BB9 PR7
LIVERPOOL|Liverpool|North West|100|L4 L6 L8 L11 L17
MANCHESTER|Manchester|North West|130|M8 M9 M11 M13 M14 M22
OLDHAM|Oldham|North West|62|OL1 OL4 OL8 OL9
ROCHDALE|Rochdale|North West|55|OL11 OL12 OL16
SALFORD|Salford|North West|60|M5 M6 M7 M27 M30
SEFTON|Sefton|North West|55|L20 L21 L30 PR8 PR9
ST-HELENS|St Helens|North West|38|WA9 WA10 WA11
STOCKPORT|Stockport|North West|65|SK1 SK2 SK3 SK4
TAMESIDE|Tameside|North West|52|OL6 OL7 SK14 SK15 M34
TRAFFORD|Trafford|North West|56|M32 M33 M41 WA14 WA15
WARRINGTON|Warrington|North West|45|WA1 WA2 WA4 WA5
WIGAN|Wigan|North West|70|WN1 WN2 WN3 WN5 WN6
WIRRAL|Wirral|North West|66|CH41 CH43 CH44 CH46 CH62
BARNSLEY|Barnsley|Yorkshire and the Humber|52|S70 S71 S72 S75
BRADFORD|Bradford|Yorkshire and the Humber|140|BD3 BD4 BD5 BD8 BD9
CALDERDALE|Calderdale|Yorkshire and the Humber|46|HX1 HX2 HX3 HX6
DONCASTER|Doncaster|Yorkshire and the Humber|68|DN1 DN2 DN4 DN5 DN12
EAST-RIDING-OF-YORKSHIRE|East Riding of Yorkshire|Yorkshire and the Humber|62|HU17 YO15 YO16 DN14 HU12
KINGSTON-UPON-HULL|Kingston upon Hull|Yorkshire and the Humber|60|HU3 HU4 HU5 HU8 HU9
KIRKLEES|Kirklees|Yorkshire and the Humber|100|HD1 HD2 HD3 WF13 WF17
LEEDS|Leeds|Yorkshire and the Humber|175|LS6 LS7 LS8 LS9 LS11 LS12 LS14
NORTH-EAST-LINCOLNSHIRE|North East Lincolnshire|Yorkshire and the Humber|34|DN31 DN32 DN33 DN34
NORTH-LINCOLNSHIRE|North Lincolnshire|Yorkshire and the Humber|35|DN15 DN16 DN17 DN18
NORTH-YORKSHIRE|North Yorkshire|Yorkshire and the Humber|115|YO11 YO12 HG1 HG2 DL7 BD23
ROTHERHAM|Rotherham|Yorkshire and the Humber|58|S60 S61 S62 S65 S66
SHEFFIELD|Sheffield|Yorkshire and the Humber|115|S2 S4 S5 S6 S8 S9
WAKEFIELD|Wakefield|Yorkshire and the Humber|75|WF1 WF2 WF6 WF8 WF10
YORK|York|Yorkshire and the Humber|35|YO1 YO10 YO24 YO26 YO31
DERBY|Derby|East Midlands|60|DE1 DE21 DE22 DE23 DE24
DERBYSHIRE|Derbyshire|East Midlands|155|S40 S41 DE4 DE55 SK17 DE7
LEICESTER|Leicester|East Midlands|90|LE1 LE2 LE3 LE4 LE5
LEICESTERSHIRE|Leicestershire|East Midlands|145|LE11 LE12 LE10 LE65 LE67
LINCOLNSHIRE|Lincolnshire|East Midlands|150|LN1 LN2 LN6 PE21 NG31 PE25
NORTH-NORTHAMPTONSHIRE|North Northamptonshire|East Midlands|80|NN8 NN15 NN16 NN17 NN18
WEST-NORTHAMPTONSHIRE|West Northamptonshire|East Midlands|95|NN1 NN2 NN3 NN4 NN5 NN11
NOTTINGHAM|Nottingham|East Midlands|65|NG1 NG3 NG5 NG6 NG7 NG8
NOTTINGHAMSHIRE|Nottinghamshire|East Midlands|165|NG17 NG18 NG19 NG24 S80 NG15
RUTLAND|Rutland|East Midlands|7|LE15 PE9
BIRMINGHAM|Birmingham|West Midlands|290|B6 B8 B10 B11 B12 B20 B23
COVENTRY|Coventry|West Midlands|78|CV1 CV2 CV3 CV5 CV6
DUDLEY|Dudley|West Midlands|68|DY1 DY2 DY5 DY8
HEREFORDSHIRE|Herefordshire|West Midlands|35|HR1 HR2 HR4 HR6
SANDWELL|Sandwell|West Midlands|85|B66 B67 B69 B70 B71
SHROPSHIRE|Shropshire|West Midlands|60|SY1 SY2 SY3 SY11 TF9
SOLIHULL|Solihull|West Midlands|48|B36 B37 B90 B91 B92
STAFFORDSHIRE|Staffordshire|West Midlands|170|ST16 ST17 WS11 WS13 DE14 B79
STOKE-ON-TRENT|Stoke-on-Trent|West Midlands|58|ST1 ST2 ST3 ST4 ST6
TELFORD-WREKIN|Telford and Wrekin|West Midlands|43|TF1 TF2 TF3 TF7
WALSALL|Walsall|West Midlands|68|WS1 WS2 WS3 WS5
WARWICKSHIRE|Warwickshire|West Midlands|120|CV10 CV11 CV21 CV22 CV34 B49
WOLVERHAMPTON|Wolverhampton|West Midlands|62|WV1 WV2 WV4 WV10 WV11
WORCESTERSHIRE|Worcestershire|West Midlands|118|WR1 WR4 WR5 DY10 B97 B98
BEDFORD|Bedford|East of England|42|MK40 MK41 MK42
CAMBRIDGESHIRE|Cambridgeshire|East of England|140|CB1 CB4 PE27 PE29 CB6
CENTRAL-BEDFORDSHIRE|Central Bedfordshire|East of England|65|LU5 LU6 LU7 SG17 SG18 MK45
ESSEX|Essex|East of England|310|CM1 CM2 CO1 CO4 SS14 SS15 CM20
HERTFORDSHIRE|Hertfordshire|East of England|270|AL1 SG1 SG2 WD17 WD18 HP2 EN8
LUTON|Luton|East of England|60|LU1 LU2 LU3 LU4
NORFOLK|Norfolk|East of England|175|NR1 NR3 NR5 NR30 PE30 NR31
PETERBOROUGH|Peterborough|East of England|52|PE1 PE2 PE3 PE4 PE7
SOUTHEND-ON-SEA|Southend-on-Sea|East of England|38|SS0 SS1 SS2 SS9
SUFFOLK|Suffolk|East of England|155|IP1 IP2 IP3 IP4 IP33 CB9 NR32
THURROCK|Thurrock|East of England|45|RM16 RM17 RM18 RM20 SS17
CITY-OF-LONDON|City of London|London|1|EC1A EC2Y EC3N EC4M
BARKING-DAGENHAM|Barking and Dagenham|London|65|IG11 RM8 RM9 RM10
BARNET|Barnet|London|90|N2 N3 N12 NW4 NW9 EN5
BEXLEY|Bexley|London|55|DA5 DA6 DA7 DA14 DA15 DA16
BRENT|Brent|London|75|NW2 NW10 HA0 HA9
BROMLEY|Bromley|London|72|BR1 BR2 BR5 BR6 SE20
CAMDEN|Camden|London|40|NW1 NW3 NW5 NW6 WC1H
CROYDON|Croydon|London|92|CR0 CR2 CR7 SE25
EALING|Ealing|London|82|W3 W5 W7 W13 UB1 UB6
ENFIELD|Enfield|London|80|EN1 EN2 EN3 N9 N18
GREENWICH|Greenwich|London|65|SE2 SE7 SE9 SE10 SE18 SE28
HACKNEY|Hackney|London|58|E5 E8 E9 N16
HAMMERSMITH-FULHAM|Hammersmith and Fulham|London|35|W6 W12 W14 SW6
HARINGEY|Haringey|London|55|N8 N15 N17 N22
HARROW|Harrow|London|58|HA1 HA2 HA3 HA7
HAVERING|Havering|London|58|RM1 RM3 RM7 RM12 RM13
HILLINGDON|Hillingdon|London|72|UB3 UB4 UB8 UB10 HA4
HOUNSLOW|Hounslow|London|66|TW3 TW4 TW5 TW7 TW13
ISLINGTON|Islington|London|40|N1 N4 N5 N7 N19
KENSINGTON-CHELSEA|Kensington and Chelsea|London|25|W8 W10 W11 SW5 SW10
KINGSTON-UPON-THAMES|Kingston upon Thames|London|37|KT1 KT2 KT3 KT6
LAMBETH|Lambeth|London|58|SE11 SE27 SW2 SW8 SW9
LEWISHAM|Lewisham|London|65|SE4 SE6 SE8 SE13 SE14
MERTON|Merton|London|48|SW19 SW20 CR4 SM4
NEWHAM|Newham|London|90|E6 E7 E12 E13 E15 E16
REDBRIDGE|Redbridge|London|78|IG1 IG2 IG3 IG6 E18
RICHMOND-UPON-THAMES|Richmond upon Thames|London|45|TW1 TW2 TW9 TW10 SW14
SOUTHWARK|Southwark|London|60|SE1 SE5 SE15 SE16 SE17
SUTTON|Sutton|London|48|SM1 SM2 SM3 SM5
TOWER-HAMLETS|Tower Hamlets|London|70|E1 E2 E3 E14
WALTHAM-FOREST|Waltham Forest|London|63|E4 E10 E11 E17
WANDSWORTH|Wandsworth|London|60|SW11 SW12 SW15 SW17 SW18
WESTMINSTER|Westminster|London|35|W1U W2 W9 NW8 SW1V
BRACKNELL-FOREST|Bracknell Forest|South East|28|RG12 RG42 GU47
BRIGHTON-HOVE|Brighton and Hove|South East|50|BN1 BN2 BN3 BN41
BUCKINGHAMSHIRE|Buckinghamshire|South East|125|HP11 HP13 HP19 HP20 SL9 MK18
EAST-SUSSEX|East Sussex|South East|105|BN20 BN21 BN22 TN34 TN37 TN22
HAMPSHIRE|Hampshire|South East|280|GU14 RG21 RG24 SO23 PO7 SP10 SO50
ISLE-OF-WIGHT|Isle of Wight|South East|25|PO30 PO31 PO33 PO36
KENT|Kent|South East|340|CT1 CT9 ME14 ME15 TN23 DA11 CT20
MEDWAY|Medway|South East|65|ME1 ME2 ME4 ME5 ME7 ME8
MILTON-KEYNES|Milton Keynes|South East|70|MK3 MK6 MK8 MK13 MK14
OXFORDSHIRE|Oxfordshire|South East|145|OX1 OX3 OX4 OX14 OX16 OX26
PORTSMOUTH|Portsmouth|South East|42|PO1 PO2 PO3 PO4 PO6
READING|Reading|South East|40|RG1 RG2 RG30 RG31
SLOUGH|Slough|South East|45|SL1 SL2 SL3
SOUTHAMPTON|Southampton|South East|52|SO14 SO15 SO16 SO17 SO19
SURREY|Surrey|South East|265|GU1 GU2 GU21 KT12 RH1 KT19 TW20
WEST-BERKSHIRE|West Berkshire|South East|35|RG14 RG18 RG19 RG7
WEST-SUSSEX|West Sussex|South East|180|BN11 BN12 RH10 RH11 PO19 PO21 RH12
WINDSOR-MAIDENHEAD|Windsor and Maidenhead|South East|35|SL4 SL6
WOKINGHAM|Wokingham|South East|42|RG40 RG41 RG5 RG6
BATH-NE-SOMERSET|Bath and North East Somerset|South West|38|BA1 BA2 BS31 BA3
BOURNEMOUTH-CHRISTCHURCH-POOLE|Bournemouth, Christchurch and Poole|South West|75|BH1 BH8 BH11 BH12 BH15 BH23
BRISTOL|Bristol|South West|95|BS2 BS3 BS4 BS5 BS7 BS13
CORNWALL|Cornwall|South West|105|TR1 TR14 TR15 PL25 PL31 TR18 EX23
DEVON|Devon|South West|145|EX1 EX2 EX4 EX32 TQ12 TQ9 EX8
DORSET|Dorset|South West|65|DT1 DT4 DT11 BH21 SP7
GLOUCESTERSHIRE|Gloucestershire|South West|130|GL1 GL2 GL4 GL50 GL51 GL5
ISLES-OF-SCILLY|Isles of Scilly|South West|1|TR21 TR22 TR23 TR24 TR25
NORTH-SOMERSET|North Somerset|South West|45|BS21 BS22 BS23 BS24 BS48
PLYMOUTH|Plymouth|South West|52|PL1 PL2 PL4 PL5 PL6
SOMERSET|Somerset|South West|110|TA1 TA2 TA6 BA20 BA21 BA11
SOUTH-GLOUCESTERSHIRE|South Gloucestershire|South West|63|BS16 BS30 BS32 BS34 BS37
SWINDON|Swindon|South West|55|SN1 SN2 SN3 SN5 SN25
TORBAY|Torbay|South West|25|TQ1 TQ2 TQ3 TQ4 TQ5
WILTSHIRE|Wiltshire|South West|105|SN14 SN15 SP1 SP2 BA14 SN10
"""

# The demo and the CLI take "the first N" authorities: a big city, a
# metropolitan borough, a large county, a rural county and a London borough.
_FIRST = ("LEEDS", "MANCHESTER", "KENT", "CORNWALL", "TOWER-HAMLETS")


@dataclass(frozen=True)
class Authority:
    code: str
    name: str
    region: str
    size: int
    districts: tuple[str, ...]
    """Postcode outward codes where this authority's children plausibly live."""


def _parse_authorities() -> tuple[Authority, ...]:
    rows = []
    for line in _AUTHORITY_TABLE.strip().splitlines():
        code, name, region, size, districts = line.split("|")
        rows.append(Authority(code, name, region, int(size), tuple(districts.split())))
    rows.sort(key=lambda a: _FIRST.index(a.code) if a.code in _FIRST else len(_FIRST))
    return tuple(rows)


AUTHORITIES: tuple[Authority, ...] = _parse_authorities()

# Ofcom reserves these numbers for drama, so a synthetic contact can never ring a real person.
_DRAMA_BY_AREA = {
    "LS": "0113 496 0",
    "S": "0114 496 0",
    "NG": "0115 496 0",
    "LE": "0116 496 0",
    "BS": "0117 496 0",
    "RG": "0118 496 0",
    "B": "0121 496 0",
    "L": "0151 496 0",
    "CH": "0151 496 0",
    "M": "0161 496 0",
    "OL": "0161 496 0",
    "SK": "0161 496 0",
    "NE": "0191 498 0",
    "SR": "0191 498 0",
}
DRAMA_LONDON = "020 7946 0"
DRAMA_ELSEWHERE = "01632 960"
DRAMA_MOBILE = "07700 900"


def drama_prefix(authority: Authority) -> str:
    """The start of a drama-range landline (three digits follow) for an authority."""
    if authority.region == "London":
        return DRAMA_LONDON
    area = re.match(r"[A-Z]+", authority.districts[0])
    return _DRAMA_BY_AREA.get(area.group() if area else "", DRAMA_ELSEWHERE)


@dataclass(frozen=True)
class Culture:
    """A naming tradition common among children in England."""

    key: str
    weight: float
    """Rough share of children whose family names follow this tradition."""
    boys: tuple[str, ...]
    girls: tuple[str, ...]
    surnames: tuple[str, ...]
    middle_rate: float
    """Chance that a child has a middle name."""
    anglo_rate: float = 0.0
    """Chance that a child's given name comes from the English list instead."""
    boys_middle: tuple[str, ...] = ()
    girls_middle: tuple[str, ...] = ()


def _w(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_ENGLISH_BOYS = _w("""Oliver George Harry Jack Jacob Noah Charlie Thomas Oscar William James Leo
Alfie Henry Joshua Freddie Archie Ethan Isaac Alexander Joseph Edward Samuel Max Daniel Arthur
Lucas Logan Theo Theodore Harrison Benjamin Mason Sebastian Finley Adam Dylan Zachary Riley
Teddy Louie Tommy Reggie Albie Ronnie Frankie Jude Elijah Toby Ryan Lewis Jamie Callum Kai
Tyler Jayden Liam Matthew Nathan Luke Christopher Michael Robert Nicholas Jonathan Frederick
Charles Jake Stanley Hugo Rory Billy Bobby Connor Kieran Aaron Owen Harvey Ellis Jenson Hunter""")
_ENGLISH_GIRLS = _w("""Olivia Amelia Isla Ava Mia Ivy Lily Isabella Sophia Rosie Grace Freya
Willow Florence Evie Ella Poppy Emily Charlotte Sienna Daisy Phoebe Evelyn Elsie Matilda Harper
Sophie Jessica Chloe Ruby Lucy Millie Holly Megan Hannah Eleanor Elizabeth Alice Erin Katie
Lauren Abigail Rebecca Victoria Alexandra Scarlett Maisie Esme Layla Eva Molly Imogen Harriet
Katherine Amber Bethany Leah Georgia Paige Madison Lacey Summer Ellie Jasmine Niamh Brooke
Courtney Kayla Margaret Josephine Isabelle Natalie Samantha Jennifer Gracie Mollie Lola Aria""")
_ENGLISH_SURNAMES = _w("""Smith Jones Taylor Brown Williams Wilson Johnson Davies Robinson Wright
Thompson Evans Walker White Roberts Green Hall Wood Jackson Clarke Harris Lewis Martin Cooper
Turner Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen James Scott Phillips
Watson Davis Parker Price Bennett Young Griffiths Mitchell Kelly Cook Carter Richardson Bailey
Collins Bell Shaw Murphy Miller Cox Richards Marshall Anderson Simpson Ellis Adams Wilkinson
Foster Chapman Powell Webb Rogers Gray Mason Hunt Campbell Matthews Owen Palmer Holmes Mills
Barnes Knight Lloyd Butler Russell Barker Fisher Stevens Jenkins Murray Dixon Harvey Graham
Pearson Fletcher Walsh Gibson Howard Andrews Stewart Elliott Reynolds Saunders Payne Fox Ford
Pearce Day Brooks West Lawrence Cole Atkinson Bradley Spencer Dawson Ball Burton O'Brien Watts
Rose Booth Perry Ryan Grant Wells Armstrong Francis Rees Hayes Hart Hudson Newman Barrett
Gregory Lowe Hodgson Whitehead Sutcliffe Hargreaves Pickering Ackroyd Greenwood Birch Kirby
Pollard Cartwright Dobson Heaton Ashworth Pemberton Trelawny Penrose Pascoe Nancarrow""")

CULTURES: tuple[Culture, ...] = (
    Culture("english", 52.0, _ENGLISH_BOYS, _ENGLISH_GIRLS, _ENGLISH_SURNAMES, 0.55),
    Culture(
        "scottish",
        3.5,
        _w("""Callum Lewis Fraser Finlay Euan Angus Alasdair Hamish Rory
Cameron Ross Murray Calum Iain Lachlan Kyle Jamie Craig Ruaridh Struan"""),
        _w("""Eilidh Isla
Kirsty Catriona Ailsa Skye Iona Mhairi Fiona Shona Kirsten Rhona Caitlin Heather Lorna Morven"""),
        _w("""MacDonald McDonald Campbell Stewart Robertson Thomson Anderson Scott MacLeod Murray
Reid Fraser Ross Paterson Henderson Mackenzie McLean Cameron Graham Hamilton Kerr Ferguson
Grant McGregor Buchanan Sinclair Munro Mackay McIntyre Baird"""),
        0.55,
        0.4,
    ),
    Culture(
        "welsh",
        3.0,
        _w("""Dafydd Rhys Gethin Osian Ieuan Cai Aled Emyr Gareth Owain Tomos
Dylan Huw Iwan Elis Macsen"""),
        _w("""Seren Cerys Ffion Carys Nia Megan Bethan Eleri Rhiannon
Lowri Angharad Catrin Gwen Elin Mali Efa Alaw Manon"""),
        _w("""Jones Williams Davies Evans Thomas
Roberts Hughes Lewis Morgan Griffiths Price Rees Jenkins Lloyd Owen Powell Pritchard Parry Bowen
Vaughan Llewellyn Pugh Howells Prosser"""),
        0.5,
        0.4,
    ),
    Culture(
        "irish",
        5.0,
        _w("""Oisín Seán Ciarán Cillian Darragh Conor Eoin Niall Pádraig Tadhg
Cian Fionn Rían Liam Ronan Declan Aidan Eoghan Donal Colm Dara Patrick Michael"""),
        _w("""Siobhán
Niamh Aoife Caoimhe Saoirse Róisín Clodagh Aisling Orla Sinéad Gráinne Ciara Éabha Aoibhinn Sorcha
Nuala Maeve Méabh Shauna Bridget Mary Kathleen"""),
        _w("""Murphy Kelly O'Brien O'Sullivan Walsh
Byrne Ryan O'Connor O'Neill Doyle McCarthy Gallagher Doherty Kennedy Lynch Quinn Moore McLaughlin
Carroll Connolly Daly Brennan Fitzgerald Nolan Donnelly Ward McDonagh Joyce Connors Maughan"""),
        0.6,
        0.3,
    ),
    Culture(
        "pakistani",
        6.0,
        _w("""Muhammad Mohammed Ibrahim Yusuf Ayaan Zayn Hamza Ali Umar Bilal
Zakariya Abdullah Hassan Hussain Imran Adnan Haris Rayyan Ahmed Saad Faisal Usman Arham Eesa Musa
Idris Zain Haroon Rehan Aahil"""),
        _w("""Aisha Ayesha Fatima Maryam Zainab Khadija Hafsa Inaya
Amina Hania Noor Zara Mahnoor Aleena Alishba Eman Hana Iqra Sana Safa Zoya Hiba Anaya Areeba
Mariam Sumaiya"""),
        _w("""Khan Hussain Ahmed Ali Akhtar Iqbal Mahmood Shah Butt Malik Qureshi
Raza Rehman Chaudhry Javed Aslam Rashid Anwar Saleem Yousaf Bashir Mirza Sheikh Zaman Hameed
Nawaz"""),
        0.45,
    ),
    Culture(
        "bangladeshi",
        2.0,
        _w("""Mohammed Abdul Ayaan Ishaq Raiyan Tahmid Zayan Ishmam Sami
Rafi Arif Saif Nabil Tanvir Yahya Imran Rakib Sadiq"""),
        _w("""Fatema Tasnim Nusrat Sadia
Sumaiya Tahmina Anisa Jannat Halima Samiha Nafisa Farhana Raisa Tasfia Mahira Iffat Sanjida"""),
        _w("""Miah Uddin Rahman Ahmed Islam Hossain Ali Chowdhury Haque Alam Ullah Karim Hussain
Sarkar Talukder Begum"""),
        0.4,
    ),
    Culture(
        "indian",
        3.0,
        _w("""Arjun Aarav Rohan Vihaan Krish Dev Aryan Reyansh Ishaan Kabir Rahul
Vikram Sai Aditya Nikhil Ravi Arnav Yash Neel"""),
        _w("""Priya Ananya Diya Aanya Saanvi Isha
Anika Kavya Riya Meera Nisha Pooja Shreya Aditi Tara Kiran Asha Myra Avni"""),
        _w("""Patel Shah
Sharma Mistry Parmar Joshi Desai Mehta Gupta Kumar Chauhan Solanki Pandya Modi Rao Iyer Pillai
Nair Reddy Chandra Lad Thakkar Kotecha Vaghela"""),
        0.35,
    ),
    Culture(
        "sikh",
        1.5,
        _w("""Arjan Gurpreet Jaskaran Harvinder Manveer Amrit Ranveer Jasdeep
Gurveer Sukhdeep Karan Tejveer Harman Ajeet"""),
        _w("""Simran Jaspreet Harleen Navneet Manpreet
Gurleen Amrit Kiranjit Jasleen Harpreet Rupinder Mehar Anmol"""),
        _w("""Sandhu Gill Dhillon Sidhu
Johal Bains Grewal Sahota Atwal Virdi Bassi Kang Mann Dhaliwal Sangha Singh"""),
        0.7,
        boys_middle=("Singh",),
        girls_middle=("Kaur",),
    ),
    Culture(
        "nigerian",
        3.0,
        _w("""Oluwaseun Oluwatobi Adebayo Ayodele Chukwuemeka Chinedu Obinna
Tobiloba Damilare Emeka Tunde Kayode Olumide Ifeanyi Chidi Babatunde Somtochukwu David Daniel
Samuel Joshua Michael Emmanuel Victor Divine"""),
        _w("""Adaeze Chiamaka Ngozi Oluwafunmilayo
Temitope Folake Abimbola Adunni Chidinma Ifeoma Nneka Oluwadamilola Titilayo Precious Blessing
Favour Grace Esther Deborah Peace Goodness Mercy Tiwalade Ebunoluwa"""),
        _w("""Adeyemi Okafor
Okonkwo Adebayo Ogunleye Balogun Oyelaran Eze Nwosu Okoro Olawale Adeleke Akinola Ojo Bello
Afolabi Oladipo Obi Chukwu Okeke Ogundipe Adewale Falana Oyewole Akande Oyinlola"""),
        0.75,
        boys_middle=_w("Oluwaseun Ayomide Chibuike Olamide Tobi Chinonso Ifeoluwa Adeola"),
        girls_middle=_w("Oluwadamilola Adaora Chioma Ayomide Ifeoluwa Oyinkansola Ebere Temiloluwa"),
    ),
    Culture(
        "ghanaian",
        1.2,
        _w("""Kwame Kofi Kwabena Kwaku Yaw Kojo Kwesi Nana Emmanuel Prince Isaac
Samuel Jeremiah Nathaniel Edwin"""),
        _w("""Ama Akosua Abena Adwoa Afua Efua Esi Yaa Akua Nana
Adjoa Princess Gifty Comfort Abigail Naomi Priscilla"""),
        _w("""Mensah Owusu Boateng Asante Osei
Agyeman Appiah Acheampong Amoah Darko Ofori Antwi Addo Boakye Quaye Tetteh Annan Badu Frimpong
Kyei"""),
        0.6,
        boys_middle=_w("Kwame Kofi Kwabena Kwaku Yaw Kojo Kwesi"),
        girls_middle=_w("Ama Akosua Abena Adwoa Afua Efua Yaa Akua"),
    ),
    Culture(
        "somali",
        1.2,
        _w("""Mohamed Abdirahman Abdullahi Ahmed Ali Hassan Ibrahim Yusuf Mustafe
Abdikarim Abdiaziz Hamza Ayub Khalid Liban Sakariye Mahad Abdisalam"""),
        _w("""Hodan Ayaan
Fadumo Hibo Sagal Ifrah Ikran Hamdi Ayan Nasra Filsan Sumaya Ladan Deqa Anisa Ruqiya Hanan Sahra
Naima Khadra"""),
        _w("""Mohamed Ali Hassan Ahmed Abdi Farah Warsame Omar Yusuf Hussein Jama Osman
Abdullahi Aden Mohamud Ismail Nur Elmi Dahir Egal Hirsi Gedi"""),
        0.2,
    ),
    Culture(
        "caribbean",
        3.0,
        _w("""Tyrone Jermaine Kemar Marcus Andre Dwayne Jamal Malachi Isaiah
Elijah Kai Tyreese Jaden Jayden Nathaniel Daniel Joshua Kyrie Kairo Zion Josiah Reuben Leon"""),
        _w("""Shanice Jada Aaliyah Tianna Keisha Nia Imani Amara Kiara Tia Jasmine Chantelle
Destiny Makayla Naomi Simone Tamika Zuri Sienna Nevaeh"""),
        _w("""Campbell Brown Williams Thomas
Clarke Smith Johnson Francis Grant Reid Robinson Lewis Walker Henry Edwards Bailey Gordon Morgan
Thompson Richards Spencer Forbes Lindsay McKenzie Samuels Powell Gayle Bennett Wright Marshall"""),
        0.6,
        0.35,
    ),
    Culture(
        "polish",
        4.0,
        _w("""Aleksander Jakub Szymon Filip Kacper Antoni Jan Mikołaj Wojciech
Mateusz Piotr Krzysztof Bartosz Dawid Igor Oliwer Franciszek Michał Adam Maksymilian Tymon
Stanisław"""),
        _w("""Zofia Zuzanna Julia Lena Maja Hanna Amelia Alicja Oliwia Natalia Wiktoria
Aleksandra Katarzyna Magdalena Małgorzata Agnieszka Gabriela Maria Martyna Nikola Emilia Kinga
Weronika"""),
        _w("""Nowak Kowalski Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński
Szymański Woźniak Dąbrowski Kozłowski Jankowski Mazur Kwiatkowski Krawczyk Piotrowski Grabowski
Nowakowski Pawłowski Michalski Wróbel Zając Król Wieczorek Jabłoński"""),
        0.3,
    ),
    Culture(
        "romanian",
        2.5,
        _w("""Andrei Alexandru Ionuț Mihai Ștefan Gabriel David Luca Matei
Darius Rareș Vlad Cristian Florin Răzvan Bogdan Eduard Sebastian Denis Robert"""),
        _w("""Maria
Ioana Elena Andreea Alexandra Ana Bianca Daria Sofia Ilinca Irina Larisa Teodora Antonia Carla
Denisa Roxana Alesia Iasmina Medeea"""),
        _w("""Popescu Ionescu Popa Pop Radu Dumitru Stan Stoica
Gheorghe Matei Constantin Rusu Munteanu Lungu Marin Ciobanu Moldovan Sârbu Tudor Florea Dinu Ene
Lazăr Niculescu"""),
        0.35,
    ),
    Culture(
        "lithuanian",
        1.2,
        _w("""Lukas Matas Jonas Dominykas Nojus Kajus Benas Augustas Tomas
Mantas Arnas Paulius Rokas Gabrielius Jokūbas Emilis Dovydas"""),
        _w("""Emilija Gabija Austėja
Ugnė Kamilė Urtė Gabrielė Lėja Amelija Goda Rugilė Viltė Miglė Barbora Ieva Karolina"""),
        _w("""Kazlauskas Jankauskas Petrauskas Stankevičius Vasiliauskas Žukauskas Butkus
Paulauskas Urbonas Kavaliauskas Navickas Rimkus Ramanauskas Savickas Balčiūnas Šimkus Vaitkus
Mockus"""),
        0.2,
    ),
    Culture(
        "arabic",
        2.5,
        _w("""Omar Ahmad Khalid Youssef Adam Karim Tariq Sami Amir Rami Hamza
Yahya Ziad Nabil Faris Mahmoud Mustafa Anas Bilal Salim"""),
        _w("""Layla Nour Yasmin Rania Salma
Lina Mariam Hala Dana Jana Sara Rahaf Malak Reem Aya Leen Farah Hiba Amira Dalia"""),
        _w("""Al-Sayed Haddad Hassan Abdullah Mansour Khalil Saleh Nasser Ibrahim Al-Khatib Darwish
Hamdan Aziz Yassin Suleiman El-Masri Jaber Othman Qasim Al-Hashimi Fadel"""),
        0.3,
    ),
)

# Where a naming tradition is much commoner than in England as a whole: multipliers on
# Culture.weight by region, then by authority. Rough, from census patterns; not statistics.
_CULTURE_BOOSTS: dict[str, dict[str, float]] = {
    "London": {
        "nigerian": 3,
        "ghanaian": 3,
        "somali": 2.5,
        "caribbean": 3,
        "arabic": 2,
        "romanian": 2,
        "polish": 1.5,
        "indian": 1.5,
        "bangladeshi": 2,
        "irish": 1.3,
        "english": 0.7,
    },
    "TOWER-HAMLETS": {"bangladeshi": 12},
    "NEWHAM": {"bangladeshi": 3, "pakistani": 2, "indian": 2},
    "BRENT": {"indian": 3, "somali": 2, "romanian": 2},
    "HARROW": {"indian": 5},
    "HOUNSLOW": {"sikh": 5, "indian": 2},
    "EALING": {"sikh": 4, "polish": 2},
    "REDBRIDGE": {"pakistani": 2, "indian": 2},
    "BARKING-DAGENHAM": {"nigerian": 2, "romanian": 2},
    "SOUTHWARK": {"nigerian": 2},
    "LAMBETH": {"caribbean": 2},
    "LEWISHAM": {"caribbean": 2},
    "HARINGEY": {"romanian": 2},
    "ENFIELD": {"romanian": 2},
    "BRADFORD": {"pakistani": 6},
    "KIRKLEES": {"pakistani": 3},
    "CALDERDALE": {"pakistani": 2},
    "BLACKBURN-DARWEN": {"pakistani": 4, "indian": 3},
    "OLDHAM": {"pakistani": 3, "bangladeshi": 3},
    "ROCHDALE": {"pakistani": 3},
    "LEEDS": {"pakistani": 1.5, "polish": 1.5},
    "MANCHESTER": {"pakistani": 2.5, "nigerian": 1.5, "somali": 1.5, "arabic": 1.5},
    "LIVERPOOL": {"irish": 2, "somali": 1.5, "arabic": 1.5},
    "BIRMINGHAM": {"pakistani": 4, "bangladeshi": 2, "caribbean": 2, "somali": 2},
    "SANDWELL": {"sikh": 4, "indian": 2},
    "WOLVERHAMPTON": {"sikh": 5, "caribbean": 1.5},
    "COVENTRY": {"sikh": 2, "indian": 2},
    "LEICESTER": {"indian": 8, "somali": 2},
    "SLOUGH": {"pakistani": 4, "sikh": 6, "indian": 2},
    "LUTON": {"pakistani": 4, "bangladeshi": 3},
    "BRISTOL": {"somali": 3, "caribbean": 1.5},
    "NOTTINGHAM": {"caribbean": 2, "pakistani": 2},
    "PETERBOROUGH": {"polish": 2, "lithuanian": 3, "pakistani": 2},
    "LINCOLNSHIRE": {"polish": 2, "lithuanian": 3},
    "NORTHUMBERLAND": {"scottish": 3},
    "CUMBRIA": {"scottish": 3},
    "South West": {"english": 1.5},
    "CORNWALL": {"english": 2},
    "ISLES-OF-SCILLY": {"english": 3},
}


def culture_weights(code: str) -> list[float]:
    """Weights of CULTURES for children living in this authority."""
    authority = next((a for a in AUTHORITIES if a.code == code), None)
    boosts = [_CULTURE_BOOSTS.get(authority.region, {}), _CULTURE_BOOSTS.get(code, {})] if authority else []
    weights = []
    for culture in CULTURES:
        weight = culture.weight
        for boost in boosts:
            weight *= boost.get(culture.key, 1.0)
        weights.append(weight)
    return weights


# Diminutives and short forms a practitioner or a record might use instead of the registered name.
NICKNAMES: dict[str, tuple[str, ...]] = {
    "William": ("Will", "Bill", "Billy", "Liam"),
    "Elizabeth": ("Liz", "Beth", "Lizzie", "Eliza"),
    "Alexander": ("Alex", "Xander", "Sandy"),
    "Alexandra": ("Alex", "Lexi", "Sasha"),
    "Robert": ("Rob", "Bob", "Bobby", "Robbie"),
    "Thomas": ("Tom", "Tommy"),
    "James": ("Jim", "Jimmy", "Jamie"),
    "Joseph": ("Joe", "Joey"),
    "Daniel": ("Dan", "Danny"),
    "Benjamin": ("Ben", "Benji"),
    "Samuel": ("Sam", "Sammy"),
    "Matthew": ("Matt",),
    "Nicholas": ("Nick", "Nicky"),
    "Christopher": ("Chris",),
    "Jonathan": ("Jon", "Jonny"),
    "Edward": ("Ed", "Eddie", "Ted"),
    "Charles": ("Charlie",),
    "Michael": ("Mike", "Mikey"),
    "Joshua": ("Josh",),
    "Nathaniel": ("Nate", "Nathan"),
    "Oliver": ("Ollie",),
    "Henry": ("Harry", "Hal"),
    "Frederick": ("Freddie", "Fred"),
    "Theodore": ("Theo", "Teddy"),
    "Zachary": ("Zach", "Zac"),
    "Jacob": ("Jake",),
    "Harrison": ("Harry",),
    "Stanley": ("Stan",),
    "Katherine": ("Kate", "Katie", "Kat"),
    "Margaret": ("Maggie", "Meg"),
    "Rebecca": ("Becky", "Becca"),
    "Jessica": ("Jess",),
    "Victoria": ("Vicky", "Tori"),
    "Abigail": ("Abbie", "Abby"),
    "Samantha": ("Sam", "Sammy"),
    "Charlotte": ("Lottie", "Charlie"),
    "Olivia": ("Liv", "Livvy"),
    "Isabella": ("Bella", "Izzy"),
    "Isabelle": ("Izzy", "Belle"),
    "Amelia": ("Millie", "Mia"),
    "Florence": ("Flo", "Florrie"),
    "Eleanor": ("Ellie", "Nell"),
    "Evelyn": ("Evie",),
    "Josephine": ("Josie",),
    "Natalie": ("Nat",),
    "Jennifer": ("Jen", "Jenny"),
    "Matilda": ("Tilly",),
    "Patrick": ("Paddy", "Pat"),
    "Gabriel": ("Gabe",),
    "Aleksander": ("Olek", "Alek"),
    "Aleksandra": ("Ola",),
    "Zofia": ("Zosia",),
    "Katarzyna": ("Kasia",),
    "Małgorzata": ("Gosia",),
    "Wojciech": ("Wojtek",),
    "Jakub": ("Kuba",),
    "Maksymilian": ("Maks",),
    "Muhammad": ("Mo",),
    "Mohammed": ("Mo",),
    "Mohamed": ("Mo",),
    "Abdullah": ("Abdul",),
    "Oluwaseun": ("Seun",),
    "Oluwatobi": ("Tobi",),
    "Oluwadamilola": ("Dami", "Lola"),
    "Oluwafunmilayo": ("Funmi",),
    "Babatunde": ("Tunde",),
    "Chukwuemeka": ("Emeka",),
    "Ayodele": ("Ayo",),
    "Temitope": ("Tope",),
    "Abimbola": ("Bimbo",),
    "Somtochukwu": ("Somto",),
    "Alexandru": ("Alex",),
    "Ionuț": ("Ionel",),
    "Dominykas": ("Domas",),
}

# Spellings of one name that records for the same child really do mix.
SPELLING_GROUPS: tuple[tuple[str, ...], ...] = (
    ("Muhammad", "Mohammed", "Mohammad", "Mohamed", "Muhammed"),
    ("Aisha", "Ayesha", "Aysha"),
    ("Seán", "Sean", "Shaun"),
    ("Zara", "Zahra"),
    ("Aaliyah", "Aliyah"),
    ("Yusuf", "Yousuf", "Yusef"),
    ("Ibrahim", "Ebrahim"),
    ("Fatima", "Fatimah", "Fatema"),
    ("Khadija", "Khadijah"),
    ("Maryam", "Mariam", "Miriam"),
    ("Aleksander", "Alexander"),
    ("Aleksandra", "Alexandra"),
    ("Katherine", "Catherine", "Kathryn"),
    ("Jayden", "Jaden"),
    ("Isabelle", "Isabel"),
    ("Niamh", "Neve"),
    ("Caoimhe", "Keeva"),
    ("Siobhán", "Siobhan", "Shivaun"),
    ("Zofia", "Sofia"),
    ("Jakub", "Jacob"),
    ("Mateusz", "Matthew"),
    ("Piotr", "Peter"),
    ("Sophia", "Sofia"),
    ("Hussain", "Hussein", "Husain"),
    ("Mohamud", "Mohamoud"),
    ("Abdirahman", "Abdurahman"),
    ("Sumaiya", "Sumaya", "Sumayyah"),
    ("Eesa", "Isa", "Esa"),
    ("Zakariya", "Zakaria", "Zachariah"),
    ("Mollie", "Molly"),
    ("Lacey", "Lacie"),
    ("Rhiannon", "Rianon"),
    ("Stephen", "Steven"),
    ("Al-Sayed", "Al Sayed", "Alsayed", "El-Sayed"),
    ("Al-Khatib", "Alkhatib"),
    ("MacDonald", "McDonald", "Macdonald"),
    ("Mackenzie", "McKenzie"),
    ("Chowdhury", "Choudhury"),
    ("Rahman", "Rehman"),
    ("O'Brien", "OBrien", "O Brien"),
    ("O'Sullivan", "O Sullivan"),
)

STREETS = _w("""Oak Church Station Victoria Park Mill High Albert Kings Manor Springfield Grange
Meadow Willow Beech Chestnut Elm Ash Cedar Hawthorn Rowan Highfield Windsor York Queens Clarence
Stanley Westfield Orchard Moor Brook Holly Laburnum Sycamore Poplar Larch Cherry Chapel School
Market Bridge Castle Abbey Priory Mount Hillside Woodland Heather Fern Thornton Ashfield Bramley
Cromwell Nelson Wellington Gladstone Coronation Jubilee Kingsway Fairfield Broadway Marlborough""")
STREET_KINDS = _w("""Road Street Avenue Close Lane Drive Way Crescent Grove Terrace Gardens Court Place
View Walk""")
STREET_ABBREVIATIONS = {
    "Road": "Rd",
    "Street": "St",
    "Avenue": "Ave",
    "Close": "Cl",
    "Lane": "Ln",
    "Drive": "Dr",
    "Crescent": "Cres",
    "Terrace": "Terr",
    "Gardens": "Gdns",
}

# service, weight, sensitive, youngest age, oldest age (inclusive), teams, roles
SERVICES: tuple[tuple[str, float, bool, int, int, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "Children's social care",
        35.0,
        False,
        0,
        17,
        (
            "Duty and assessment team",
            "Child protection team",
            "Children in care team",
            "MASH",
            "Disabled children's team",
            "Leaving care team",
        ),
        ("Social worker", "Senior social worker", "Advanced practitioner", "Team manager"),
    ),
    (
        "Early help",
        30.0,
        False,
        0,
        17,
        ("Early help hub", "Family support team", "Locality team North", "Locality team South"),
        ("Family support worker", "Early help practitioner", "Lead professional"),
    ),
    (
        "Education welfare",
        12.0,
        False,
        5,
        17,
        ("Education welfare service", "Attendance team", "Children missing education team"),
        ("Education welfare officer", "Attendance officer"),
    ),
    (
        "Health visiting",
        12.0,
        False,
        0,
        4,
        ("Health visiting team", "0-19 public health nursing"),
        ("Health visitor", "Community nursery nurse"),
    ),
    (
        "Youth justice",
        6.0,
        False,
        10,
        17,
        ("Youth justice service", "Youth offending team"),
        ("Youth justice officer", "Case manager"),
    ),
    (
        "Sexual health",
        2.0,
        True,
        13,
        17,
        ("Young people's sexual health service",),
        ("Sexual health nurse", "Outreach worker"),
    ),
    ("Substance misuse", 1.5, True, 11, 17, ("Young people's substance misuse team",), ("Substance misuse worker",)),
)

PURPOSES = (
    "child-protection-enquiry",
    "child-in-need-assessment",
    "early-help-assessment",
    "looked-after-child-review",
    "missing-child",
)

# Practitioners are adults, so their first names come from an older generation as well.
ADULT_GIVEN = _w("""Sarah Claire Emma Rachel Helen Lisa Nicola Joanne Karen Michelle Laura Gemma
Kerry Donna Amanda Louise Jo Vicky Zoe Hayley Rebecca Kate Mark Paul David Andrew Richard Stephen
Gary Darren Simon Ian Neil Lee Jason Craig Martin Chris Tom Ben Dan Priya Anjali Nadia Shabana
Rukhsana Farah Tariq Asif Imran Sunita Rajesh Funmi Bisi Chinwe Kwame Abena Marcia Delroy Sonia
Beverley Agnieszka Monika Siobhan Ciara Rhian Gareth Fiona Alison Julie Dawn Angela Jackie""")


# --------------------------------------------------------------------------- rules for names


# Letters that Unicode decomposition leaves alone but English systems still flatten.
_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ß": "ss", "ø": "o", "Ø": "O", "đ": "d"})


def fold(text: str) -> str:
    """Drop accents (Oisín -> Oisin, Łukasz -> Lukasz), as many case systems do on entry."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def squash(name: str) -> str:
    """Lower-case letters only: O'Brien, OBrien and O Brien agree."""
    return re.sub(r"[^a-z]", "", fold(name).lower())


def _name_clusters() -> dict[str, str]:
    """Map each squashed name to one representative of all its nicknames and spellings."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    groups = [(root, *nicks) for root, nicks in NICKNAMES.items()] + list(SPELLING_GROUPS)
    for group in groups:
        first = find(squash(group[0]))
        for other in group[1:]:
            parent[find(squash(other))] = first
    return {name: find(name) for name in list(parent)}


_CLUSTERS = _name_clusters()


def _other_spellings() -> dict[str, tuple[str, ...]]:
    others: dict[str, list[str]] = {}
    for group in SPELLING_GROUPS:
        for name in group:
            known = others.setdefault(name, [])
            for other in group:
                if other != name and other not in known:
                    known.append(other)
    return {name: tuple(spellings) for name, spellings in others.items()}


SPELLINGS = _other_spellings()
"""Each name with a spelling variant -> its other spellings."""


@functools.lru_cache(maxsize=100_000)  # names repeat endlessly across a million children
def canonical_name(name: str) -> str:
    """A key under which nicknames, spellings, accents and punctuation of one name agree."""
    squashed = squash(name)
    return _CLUSTERS.get(squashed, squashed)


def typo(rng: random.Random, name: str) -> str:
    """One keying slip: two letters swapped, one dropped, one doubled or a vowel changed."""
    if len(name) < 4:
        return name + name[-1]
    i = rng.randrange(1, len(name) - 1)
    op = rng.random()
    if op < 0.4 and name[i] != name[i + 1]:
        return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    if op < 0.7:
        return name[:i] + name[i + 1 :]
    if op < 0.85 or name[i].lower() not in "aeiou":
        return name[:i] + name[i] + name[i:]
    vowel = rng.choice([v for v in "aeiou" if v != name[i].lower()])
    return name[:i] + vowel + name[i + 1 :]


def gendered_surname(family: str, sex: str, culture: Culture) -> str:
    """Polish and Lithuanian surnames take a feminine form for girls."""
    if sex != "F":
        return family
    if culture.key == "polish":
        for male, female in (("ski", "ska"), ("cki", "cka"), ("dzki", "dzka")):
            if family.endswith(male):
                return family[: -len(male)] + female
    if culture.key == "lithuanian":
        for male, female in (("ius", "iūtė"), ("as", "aitė"), ("us", "utė"), ("is", "ytė"), ("ys", "ytė")):
            if family.endswith(male):
                return family[: -len(male)] + female
    return family


# Boys named Muhammad first are usually called by their second name; nobody is called Singh or Kaur.
CALLED_BY_MIDDLE = frozenset({"Muhammad", "Mohammed"})
NOT_CALLED = frozenset({"Singh", "Kaur"})


def callable_middle(middle: str) -> bool:
    """Whether a child could plausibly be known by the first of these middle names."""
    return bool(middle) and middle.split(" ")[0] not in NOT_CALLED
