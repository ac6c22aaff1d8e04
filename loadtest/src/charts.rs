//! The HTML report's charts, drawn with plotters to SVG text: the run second by second, and the
//! join-time distribution.

use plotters::coord::Shift;
use plotters::prelude::*;

/// Width and height of every chart, in pixels.
const SIZE: (u32, u32) = (760, 250);
/// The lines' colours, in the order the lines are given.
const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// A chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing the chart `{title}`: {reason}")]
pub struct ChartError {
    title: String,
    reason: String,
}

/// One line: its name and its points; a point may be missing (nothing was read that second).
pub struct Line<'a> {
    /// The legend.
    pub name: &'a str,
    /// `(x, y)`.
    pub points: Vec<(f64, Option<f64>)>,
}

/// A chart of lines over a shared x axis.
pub struct Chart<'a> {
    /// The caption.
    pub title: &'a str,
    /// The x axis's label.
    pub x_label: &'a str,
    /// The y axis's label.
    pub y_label: &'a str,
    /// The lines.
    pub lines: Vec<Line<'a>>,
    /// An x range to shade (the measurement window).
    pub shaded: Option<(f64, f64)>,
    /// The x axis's range, when several charts share one; otherwise the points'.
    pub x_range: Option<(f64, f64)>,
    /// Whether the x axis is logarithmic (for distributions spanning several decades).
    pub x_log: bool,
}

/// Where `x` is drawn: itself, or its logarithm on a logarithmic axis.
fn axis_x(x: f64, log: bool) -> f64 {
    if log { x.max(MIN_LOG_X).log10() } else { x }
}

/// The smallest value a logarithmic axis shows.
const MIN_LOG_X: f64 = 0.01;

/// A tick label: whole numbers without decimals, others with one decimal, or two significant
/// digits below 1.
fn tick(value: f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        let digits = (1 - value.abs().log10().floor() as i32).clamp(1, 4) as usize;
        format!("{value:.digits$}")
    }
}

impl Chart<'_> {
    /// The chart as an SVG document.
    pub fn svg(&self) -> Result<String, ChartError> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            self.draw(&root).map_err(|reason| ChartError {
                title: self.title.to_owned(),
                reason,
            })?;
        }
        Ok(svg)
    }

    fn draw(&self, root: &DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String> {
        let text = |error: DrawingAreaErrorKind<_>| error.to_string();
        root.fill(&WHITE).map_err(text)?;
        let log = self.x_log;
        let known = || {
            self.lines
                .iter()
                .flat_map(|line| &line.points)
                .filter_map(move |(x, y)| Some((axis_x(*x, log), (*y)?)))
        };
        let (x_min, x_max) = match self.x_range {
            Some((from, to)) => (axis_x(from, log), axis_x(to, log)),
            None => {
                let x_max = known().map(|(x, _)| x).fold(f64::MIN, f64::max);
                let x_min = known().map(|(x, _)| x).fold(f64::MAX, f64::min);
                if x_min < x_max {
                    (if log { x_min } else { x_min.min(0.0) }, x_max)
                } else {
                    (0.0, 1.0)
                }
            }
        };
        let x_max = if x_max > x_min { x_max } else { x_min + 1.0 };
        let y_max = known().map(|(_, y)| y).fold(0.0, f64::max);
        // Room above the highest point; a flat zero line still gets an axis.
        let y_top = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, ("sans-serif", 17))
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(64)
            .build_cartesian_2d(x_min..x_max, 0.0..y_top)
            .map_err(text)?;
        let y_format = |value: &f64| tick(*value);
        let x_format = move |value: &f64| tick(if log { 10f64.powf(*value) } else { *value });
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .x_label_formatter(&x_format)
            .y_label_formatter(&y_format)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(text)?;
        if let Some((from, to)) = self.shaded {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(from.max(x_min), 0.0), (to.min(x_max), y_top)],
                    RGBColor(255, 236, 179).mix(0.45).filled(),
                )))
                .map_err(text)?;
        }
        for (line, colour) in self.lines.iter().zip(COLOURS.iter().cycle()) {
            let points: Vec<(f64, f64)> = line
                .points
                .iter()
                .filter_map(|(x, y)| Some((axis_x(*x, log), (*y)?)))
                .collect();
            let style = ShapeStyle::from(colour).stroke_width(2);
            chart
                .draw_series(LineSeries::new(points, style))
                .map_err(text)?
                .label(line.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        }
        if self.lines.len() > 1 || self.shaded.is_some() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .draw()
                .map_err(text)?;
        }
        root.present().map_err(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_lines_with_gaps_and_a_shaded_window() {
        let chart = Chart {
            title: "Packets per second",
            x_label: "seconds",
            y_label: "packets/s",
            lines: vec![
                Line {
                    name: "forwarded",
                    points: vec![(0.0, Some(10.0)), (1.0, None), (2.0, Some(30.0))],
                },
                Line {
                    name: "received",
                    points: vec![(0.0, Some(9.0)), (1.0, Some(19.0)), (2.0, Some(29.0))],
                },
            ],
            shaded: Some((1.0, 2.0)),
            x_range: Some((0.0, 3.0)),
            x_log: false,
        };
        let svg = chart.svg().expect("drawn");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("Packets per second"));
        assert!(svg.contains("<polyline"), "the lines are drawn");
        assert!(svg.contains("forwarded") && svg.contains("received"));
        let empty = Chart {
            title: "nothing",
            x_label: "seconds",
            y_label: "",
            lines: vec![Line {
                name: "none",
                points: Vec::new(),
            }],
            shaded: None,
            x_range: None,
            x_log: true,
        };
        assert!(empty.svg().is_ok(), "an empty chart still draws its axes");
        assert_eq!(tick(3.0), "3");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(12.5), "12.5");
        assert_eq!(tick(1500.0), "1500");
        assert_eq!(tick(0.0123), "0.012");
    }
}
