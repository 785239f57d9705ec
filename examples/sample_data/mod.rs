//! A deterministic generator of Personalize-format datasets with real structure: each user
//! favours one or two categories, popularity within a category is Zipf-skewed, and interactions
//! come in sessions (views, some add-to-carts, fewer purchases) spread over 90 days. Other
//! shapes for comparisons: a history spanning years, a stronger or weaker popularity skew, longer
//! sessions, and sessions that walk from an item to related ones.
//! Shared by `generate-data` and `train-bench` through `#[path]`.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

/// The newest interaction's time: 2026-11-01T00:00:00Z. Fixed so output never changes.
pub const END: i64 = 1_793_491_200;
const DAY: i64 = 86_400;

pub struct Spec {
    pub items: usize,
    pub users: usize,
    pub interactions: usize,
    pub seed: u64,
    /// Days of history, ending at `END`.
    pub days: i64,
    /// Zipf exponent of popularity within a category (1.1: a common skew; higher is steeper).
    pub skew: f64,
    /// Longest session, in views.
    pub session: usize,
    /// Percent chance that a view after the first in a session steps to one of the 3 items next to
    /// the previous one (in its category's popularity order): sessions that walk between related
    /// items. 0 keeps each view independent.
    pub walk: u32,
}

impl Default for Spec {
    /// The sample data's shape.
    fn default() -> Self {
        Spec {
            items: 600,
            users: 3000,
            interactions: 40_000,
            seed: 7,
            days: 90,
            skew: 1.1,
            session: 6,
            walk: 0,
        }
    }
}

struct Category {
    name: &'static str,
    nouns: &'static [&'static str],
    materials: &'static [&'static str],
    /// Price range in whole currency units.
    price: (u32, u32),
    /// Relative share of shoppers who favour it.
    appeal: u32,
}

const CATEGORIES: &[Category] = &[
    Category {
        name: "shoes",
        nouns: &[
            "Runner",
            "Trail Shoe",
            "Loafer",
            "Sneaker",
            "Chelsea Boot",
            "Sandal",
        ],
        materials: &["Suede", "Leather", "Mesh", "Canvas"],
        price: (39, 189),
        appeal: 9,
    },
    Category {
        name: "shirts",
        nouns: &[
            "Oxford Shirt",
            "Linen Shirt",
            "Tee",
            "Polo",
            "Flannel Shirt",
        ],
        materials: &["Cotton", "Linen", "Merino", "Organic Cotton"],
        price: (15, 89),
        appeal: 8,
    },
    Category {
        name: "jackets",
        nouns: &["Parka", "Rain Jacket", "Denim Jacket", "Blazer", "Puffer"],
        materials: &["Wool", "Down", "Waxed Cotton", "Recycled Nylon"],
        price: (59, 349),
        appeal: 5,
    },
    Category {
        name: "bags",
        nouns: &[
            "Tote",
            "Backpack",
            "Duffel",
            "Crossbody Bag",
            "Messenger Bag",
        ],
        materials: &["Leather", "Canvas", "Nylon"],
        price: (25, 220),
        appeal: 4,
    },
    Category {
        name: "hats",
        nouns: &["Beanie", "Cap", "Bucket Hat", "Fedora"],
        materials: &["Wool", "Cotton", "Straw"],
        price: (12, 79),
        appeal: 2,
    },
    Category {
        name: "watches",
        nouns: &["Field Watch", "Diver", "Chronograph", "Dress Watch"],
        materials: &["Steel", "Titanium", "Bronze"],
        price: (89, 690),
        appeal: 2,
    },
    Category {
        name: "home",
        nouns: &["Mug", "Throw Blanket", "Candle", "Vase", "Cushion"],
        materials: &["Ceramic", "Wool", "Soy Wax", "Linen"],
        price: (9, 120),
        appeal: 3,
    },
    Category {
        name: "beauty",
        nouns: &["Face Serum", "Lip Balm", "Hand Cream", "Shampoo"],
        materials: &["Rose", "Crème", "Sea Salt", "Citrus"],
        price: (6, 65),
        appeal: 3,
    },
];
const STYLES: &[&str] = &[
    "Classic", "Everyday", "Heritage", "Urban", "Coastal", "Alpine", "Studio", "Weekend", "Nordic",
    "Café",
];
const COLORS: &[&str] = &[
    "Black", "Navy", "Olive", "Sand", "Burgundy", "Charcoal", "Ivory", "Rust", "Sage", "Écru",
];
const BRANDS: &[&str] = &[
    "Northwind",
    "Fjällräven & Co",
    "Acme",
    "Kestrel",
    "Maison Ode",
    "Tern",
    "Lumen",
];
const CENTS: &[&str] = &["00", "50", "90", "95", "99"];

pub struct Item {
    pub id: String,
    pub category: usize,
}

/// Writes `items.csv`, `interactions.csv` and `users.csv` into `dir`; returns (items, users,
/// interactions).
pub fn write(spec: &Spec, dir: &Path) -> std::io::Result<(usize, usize, usize)> {
    std::fs::create_dir_all(dir)?;
    let mut rng = fastrand::Rng::with_seed(spec.seed);
    let items = write_items(spec, &mut rng, &dir.join("items.csv"))?;
    let (users, interactions) =
        write_interactions(spec, &items, &mut rng, &dir.join("interactions.csv"))?;
    write_users(spec, &dir.join("users.csv"))?;
    Ok((items.len(), users, interactions))
}

/// The users dataset: a loyalty tier (a fifth gold, two fifths silver, the rest bronze) and an
/// age, from the user's number alone, so the other files stay as the seed makes them.
fn write_users(spec: &Spec, path: &Path) -> std::io::Result<()> {
    let mut out = csv::Writer::from_path(path)?;
    out.write_record(["USER_ID", "TIER", "AGE"])?;
    for u in 0..spec.users {
        let tier = match u % 5 {
            0 => "gold",
            1 | 2 => "silver",
            _ => "bronze",
        };
        let age = 18 + (u * 37) % 60;
        out.write_record([
            format!("user-{:05}", u + 1),
            tier.to_owned(),
            age.to_string(),
        ])?;
    }
    out.flush()
}

fn write_items(spec: &Spec, rng: &mut fastrand::Rng, path: &Path) -> std::io::Result<Vec<Item>> {
    let mut out = csv::Writer::from_path(path)?;
    out.write_record([
        "ITEM_ID", "NAME", "CATEGORY", "BRAND", "PRICE", "URL", "IMAGE",
    ])?;
    let mut items = Vec::with_capacity(spec.items);
    for n in 0..spec.items {
        let category = n % CATEGORIES.len();
        let c = &CATEGORIES[category];
        let id = format!("sku-{:05}", 10_001 + n);
        let noun = c.nouns[rng.usize(..c.nouns.len())];
        let material = c.materials[rng.usize(..c.materials.len())];
        let style = STYLES[rng.usize(..STYLES.len())];
        let color = COLORS[rng.usize(..COLORS.len())];
        // A few names carry quotes and commas, as real catalogs do.
        let name = match rng.u32(..20) {
            0 => format!("{style} \"{noun}\", {color}"),
            1 => format!("{material} {noun}, {color} (set of 2)"),
            _ => format!("{style} {material} {noun} – {color}"),
        };
        let price = format!(
            "{}.{}",
            rng.u32(c.price.0..=c.price.1),
            CENTS[rng.usize(..CENTS.len())]
        );
        let brand = BRANDS[rng.usize(..BRANDS.len())];
        out.write_record([
            id.as_str(),
            &name,
            c.name,
            brand,
            &price,
            &format!("https://shop.example/p/{id}"),
            &format!("https://cdn.shop.example/img/{id}.jpg"),
        ])?;
        items.push(Item { id, category });
    }
    out.flush()?;
    Ok(items)
}

/// Zipf-like rank: small ranks are much likelier (weight 1/(rank+1)^s).
fn zipf(rng: &mut fastrand::Rng, n: usize, s: f64) -> usize {
    // Inverse-transform on the continuous approximation; good enough and O(1).
    let max = (n as f64 + 1.0).powf(1.0 - s);
    let u = rng.f64();
    let x = (1.0 + u * (max - 1.0)).powf(1.0 / (1.0 - s)) - 1.0;
    (x as usize).min(n - 1)
}

fn weighted_category(rng: &mut fastrand::Rng) -> usize {
    let total: u32 = CATEGORIES.iter().map(|c| c.appeal).sum();
    let mut pick = rng.u32(..total);
    for (i, c) in CATEGORIES.iter().enumerate() {
        if pick < c.appeal {
            return i;
        }
        pick -= c.appeal;
    }
    0
}

fn write_interactions(
    spec: &Spec,
    items: &[Item],
    rng: &mut fastrand::Rng,
    path: &Path,
) -> std::io::Result<(usize, usize)> {
    // Items of each category in a fixed, shuffled popularity order.
    let mut by_category: Vec<Vec<usize>> = vec![Vec::new(); CATEGORIES.len()];
    for (i, item) in items.iter().enumerate() {
        by_category[item.category].push(i);
    }
    for list in &mut by_category {
        rng.shuffle(list);
    }
    // Each item's place in its category's list, for walks to the items next to it.
    let mut place = vec![0; items.len()];
    for list in &by_category {
        for (rank, &i) in list.iter().enumerate() {
            place[i] = rank;
        }
    }

    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP")?;
    // Each view brings 0.18 add-to-carts and 0.09 purchases on average: budget views accordingly.
    let per_user = spec.interactions as f64 / spec.users as f64 / 1.27;
    let mut written = 0;
    let mut users_seen = 0;
    for u in 0..spec.users {
        let user = format!("user-{:05}", u + 1);
        let favourites = [weighted_category(rng), weighted_category(rng)];
        let loyal = rng.bool(); // some users stick to one category
        // Activity is skewed too: a few heavy users, many light ones (mean ≈ per_user).
        let budget = ((-rng.f64().max(1e-9).ln()) * per_user).round().max(1.0) as usize;
        let mut left = budget;
        let mut wrote_any = false;
        while left > 0 {
            let day = rng.i64(0..spec.days);
            let mut time = END - (spec.days - day) * DAY + rng.i64(0..DAY);
            let session_len = rng.usize(1..=spec.session).min(left);
            let mut previous: Option<usize> = None;
            for _ in 0..session_len {
                let walked = match previous {
                    Some(from) if spec.walk > 0 && rng.u32(..100) < spec.walk => {
                        let list = &by_category[items[from].category];
                        Some(list[(place[from] + rng.usize(1..=3)) % list.len()])
                    }
                    _ => None,
                };
                let chosen = walked.or_else(|| {
                    let category = if rng.u32(..10) < 8 {
                        favourites[if loyal { 0 } else { rng.usize(..2) }]
                    } else {
                        rng.usize(..CATEGORIES.len())
                    };
                    let list = &by_category[category];
                    (!list.is_empty()).then(|| list[zipf(rng, list.len(), spec.skew)])
                });
                let Some(chosen) = chosen else {
                    continue;
                };
                previous = Some(chosen);
                let item = &items[chosen].id;
                time = (time + rng.i64(20..600)).min(END);
                writeln!(out, "{user},{item},view,{time}")?;
                written += 1;
                if rng.u32(..100) < 18 {
                    writeln!(out, "{user},{item},add-to-cart,{}", (time + 30).min(END))?;
                    written += 1;
                    if rng.bool() {
                        writeln!(out, "{user},{item},purchase,{}", (time + 240).min(END))?;
                        written += 1;
                    }
                }
                wrote_any = true;
            }
            left -= session_len;
        }
        users_seen += usize::from(wrote_any);
    }
    out.flush()?;
    Ok((users_seen, written))
}
