//! The PNG: RSS and spool depth of each client over time, fault phases
//! shaded, the start of the drain marked.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

/// DejaVu Sans from Debian's fonts-dejavu-core (installed by scripts/setup):
/// plotters' ab_glyph renderer needs a TTF font and finds none by itself.
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

pub struct Line {
    pub name: String,
    pub color: RGBColor,
    /// `(seconds, value)`.
    pub points: Vec<(f64, f64)>,
}

pub struct Panel {
    pub title: String,
    pub lines: Vec<Line>,
}

pub struct Plot<'a> {
    pub title: String,
    pub panels: Vec<Panel>,
    /// Seconds of the fault phases.
    pub faults: &'a [(f64, f64)],
    /// Seconds at which production stopped and the drain began.
    pub drain_from: f64,
}

fn load_font() -> Result<(), String> {
    let bytes = std::fs::read(FONT).map_err(|e| {
        format!("cannot read the plot's font {FONT}: {e}; run scripts/setup (fonts-dejavu-core)")
    })?;
    // plotters keeps fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| format!("{FONT} is not a usable TTF font"))
}

pub fn draw(path: &Path, plot: &Plot) -> Result<(), String> {
    load_font()?;
    let err = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    let root =
        BitMapBackend::new(path, (1200, 400 * plot.panels.len() as u32 + 50)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(&plot.title, ("sans-serif", 26))
        .map_err(|e| err(&e))?;
    let x_end = plot
        .panels
        .iter()
        .flat_map(|p| p.lines.iter().flat_map(|l| l.points.last()))
        .map(|(t, _)| *t)
        .fold(plot.drain_from, f64::max)
        / 60.0;
    let areas = root.split_evenly((plot.panels.len(), 1));
    for (area, panel) in areas.iter().zip(&plot.panels) {
        let y_max = panel
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|(_, v)| *v))
            .fold(1.0, f64::max)
            * 1.45;
        let mut chart = ChartBuilder::on(area)
            .margin(15)
            .caption(&panel.title, ("sans-serif", 20))
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..x_end.max(0.1), 0f64..y_max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("minutes")
            .y_desc(panel.title.as_str())
            .light_line_style(RGBColor(238, 238, 238))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(|e| err(&e))?;
        let shade = RGBColor(255, 215, 215);
        chart
            .draw_series(
                plot.faults.iter().map(|(a, b)| {
                    Rectangle::new([(a / 60.0, 0.0), (b / 60.0, y_max)], shade.filled())
                }),
            )
            .map_err(|e| err(&e))?
            .label("faults on")
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], shade.filled()));
        let drain = plot.drain_from / 60.0;
        chart
            .draw_series(LineSeries::new(
                [(drain, 0.0), (drain, y_max)],
                BLACK.stroke_width(1),
            ))
            .map_err(|e| err(&e))?
            .label("production stops, drain")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK));
        for line in &panel.lines {
            let color = line.color;
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().map(|(t, v)| (t / 60.0, *v)),
                    color.stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(line.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}
