//! The dashboard's files, compiled into the binary: a fixed table, so a request can never name a file on disk.

pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

pub const ASSETS: &[Asset] = &[
    Asset {
        name: "dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/dashboard.js"),
    },
    Asset {
        name: "dashboard.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/dashboard.css"),
    },
    // uPlot 1.6.32, vendored unchanged (cli/assets/uplot/README.md: source and sha256).
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/uplot/uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/uplot/uPlot.min.css"),
    },
    Asset {
        name: "uPlot.LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../assets/uplot/LICENSE"),
    },
];

/// The asset's index in [`ASSETS`].
pub fn find(name: &str) -> Option<usize> {
    ASSETS.iter().position(|a| a.name == name)
}
